//! A command app's stdout, in arbitrary writes, through the output pipe and the output
//! rules: `floom_runtime::fuzzing::command_output`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floom_runtime::fuzzing::command_output(data));
