use clap::Parser;

fn main() {
    let cli = lxcfs_uring::cli::Cli::parse();
    if let Err(msg) = lxcfs_uring::daemon::run(&cli) {
        eprintln!("lxcfs-uring: {msg}");
        std::process::exit(1);
    }
}
