use clap::Parser;

use lxcfs_uring::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Stats {
            runtime_dir,
            prometheus,
        }) => {
            let request = if *prometheus {
                "stats prometheus"
            } else {
                "stats"
            };
            lxcfs_uring::control::ask(runtime_dir, request).map(|text| print!("{text}"))
        }
        Some(Command::OciHook {
            mountpoint,
            log_file,
        }) => lxcfs_uring::oci_hook::run(mountpoint, log_file.as_deref()),
        Some(Command::Man) => lxcfs_uring::cli::man_page()
            .map(|page| {
                use std::io::Write;
                let _ = std::io::stdout().write_all(&page);
            })
            .map_err(|e| format!("cannot render the manual page: {e}")),
        Some(Command::FillQueues { mountpoint, depth }) => {
            lxcfs_uring::ring::fill::run_helper(mountpoint, usize::from(*depth))
        }
        None => lxcfs_uring::daemon::run(&cli),
    };
    if let Err(msg) = result {
        eprintln!("lxcfs-uring: {msg}");
        std::process::exit(1);
    }
}
