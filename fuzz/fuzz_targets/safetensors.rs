//! Fuzz target `safetensors`: see [`adamant_fuzz::safetensors`] for what it feeds the bytes to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| adamant_fuzz::safetensors(data));
