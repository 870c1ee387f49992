//! `cargo xtask demo [--keep]`: the whole system with real mail, in network
//! namespaces it creates and removes (integration_tests::demo; docs/demo.md).

use integration_tests::demo::{self, show::Out, Options};

/// Ctrl-C and SIGTERM: the first asks the demo to stop and clean up (it
/// checks between steps and in every wait); the demo's own guards remove
/// what it made. tokio's signal support is already in the dependency graph
/// (the daemon uses it), so no crate is added for this; once a handler is
/// registered the signal no longer kills the process mid-cleanup.
fn watch_signals() {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("signal runtime");
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if demo::interrupted() {
                    eprintln!("\ndemo: still cleaning up, please wait");
                } else {
                    eprintln!("\ndemo: interrupted; cleaning up");
                    demo::interrupt();
                }
            }
        });
    });
}

fn main() -> std::process::ExitCode {
    let mut keep = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("usage: demo [--keep]\n  --keep  leave everything running until Ctrl-C and print how to look around");
                return std::process::ExitCode::SUCCESS;
            }
            other => {
                eprintln!("demo: unknown argument {other:?} (try --help)");
                return std::process::ExitCode::from(2);
            }
        }
    }
    watch_signals();
    demo::main_with(&Options {
        keep,
        color: Out::terminal(),
    })
}
