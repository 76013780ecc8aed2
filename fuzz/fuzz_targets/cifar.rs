//! Fuzz target `cifar`: see [`adamant_fuzz::cifar`] for what it feeds the bytes to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| adamant_fuzz::cifar(data));
