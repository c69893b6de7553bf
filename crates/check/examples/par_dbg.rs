use corevisor_check::threads::{machine, run_parallel};
fn main() {
    let images = ["demo", "share", "share", "poweroff"];
    let l = machine(4).unwrap();
    println!("{:x?}", l.core.core.layout);
    for round in 0..400 {
        let p = run_parallel(machine(4).unwrap(), &images, 1).unwrap();
        if p.diverged.is_empty() {
            continue;
        }
        println!(
            "round {round}: {:?} interleaved {}",
            p.diverged, p.interleaved
        );
    }
}
