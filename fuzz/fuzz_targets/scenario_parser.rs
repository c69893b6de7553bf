//! Any bytes as a scenario file: the parser returns a scenario or one error naming a line,
//! never panics; the machine of a scenario it accepts is built or refused naming its field.
#![no_main]

use corevisor_check::engine::ModelMachine;
use corevisor_sim::scenario::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse("fuzz.json", text) {
        Ok(sc) => {
            assert!(sc.steps.len() <= text.len(), "more steps than bytes");
            // The machine it describes is built, or refused in one line naming the field.
            if let Err(e) = ModelMachine::for_scenario(&sc, None) {
                assert!(e.0.starts_with("field \"machine."), "{}", e.0);
                assert!(!e.0.contains('\n'), "one line: {:?}", e.0);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "one line: {msg:?}");
            assert!(msg.starts_with("fuzz.json"), "names the file: {msg:?}");
        }
    }
});
