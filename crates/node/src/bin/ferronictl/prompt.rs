//! Questions on the terminal, answered line by line on standard input (which may also be a pipe, so
//! scripts can answer `remove`'s typed confirmations). Questions go to stdout like click's prompts.

use crate::error::{CtlError, CtlResult};
use crate::output;
use std::io::{BufRead, IsTerminal};

/// Asks until a non-empty line arrives, as click's `prompt` does; end of input aborts.
pub fn ask(question: &str) -> CtlResult<String> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    loop {
        output::print(&format!("{question}: "));
        let mut line = String::new();
        let read = lines
            .read_line(&mut line)
            .map_err(|e| CtlError::failed(format!("cannot read the answer from standard input: {e}")))?;
        if read == 0 {
            output::print("\n");
            return Err(CtlError::failed("Aborted: no answer on standard input"));
        }
        let answer = line.trim_end_matches(['\n', '\r']).trim();
        if !answer.is_empty() {
            return Ok(answer.to_string());
        }
    }
}

/// `question [y/N]: `; anything but y/yes (any case) is no.
pub fn confirm(question: &str) -> CtlResult<bool> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    output::print(&format!("{question} [y/N]: "));
    let read = stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CtlError::failed(format!("cannot read the answer from standard input: {e}")))?;
    if read == 0 {
        output::print("\n");
    }
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// click's `prompt(question, default=…)`: `question [default]: `; an empty line takes the default,
/// end of input aborts.
pub fn ask_default(question: &str, default: &str) -> CtlResult<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    output::print(&format!("{question} [{default}]: "));
    let read = stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CtlError::failed(format!("cannot read the answer from standard input: {e}")))?;
    if read == 0 {
        output::print("\n");
        return Err(CtlError::failed("Aborted: no answer on standard input"));
    }
    let answer = line.trim();
    Ok(if answer.is_empty() { default } else { answer }.to_string())
}

/// Commands that ask questions unless `--force` refuse up front when nobody can answer them, rather
/// than taking a closed or piped standard input as "no".
pub fn require_terminal(force: bool, command: &str) -> CtlResult<()> {
    if force || std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(CtlError::failed(format!(
        "{command} asks for confirmation, which needs a terminal on standard input; use --force to proceed without questions"
    )))
}
