//! `ferroni-fence [--fence] <heartbeat> <data dir> <daemon pid>`: the fencing process as a program
//! of its own. The daemon starts it when it is installed next to `ferroni`; it is the same loop as
//! `ferroni --fence`, in a binary that links only std and nix, so a node's second process stays
//! around a megabyte resident instead of mapping the whole daemon again.

// The daemon uses the heartbeat-writing half of the module; this program only the fence loop.
#[allow(dead_code)]
#[path = "../fence.rs"]
mod fence;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == fence::FENCE_FLAG) {
        args.next();
    }
    fence::fence_main(args)
}
