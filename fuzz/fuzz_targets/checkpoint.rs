//! Fuzz target `checkpoint`: see [`adamant_fuzz::checkpoint`] for what it feeds the bytes to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| adamant_fuzz::checkpoint(data));
