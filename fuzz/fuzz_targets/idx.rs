//! Fuzz target `idx`: see [`adamant_fuzz::idx`] for what it feeds the bytes to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| adamant_fuzz::idx(data));
