//! Fuzz target `npy`: see [`adamant_fuzz::npy`] for what it feeds the bytes to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| adamant_fuzz::npy(data));
