//! `show-config` and `edit-config`: the dynamic configuration in the DCS `config` key.
//!
//! `edit-config` builds the new configuration in patronictl's order (`--replace`, then `--apply` as a
//! JSON merge patch, then `--set`/`--pg`, or else the editor), validates it with the daemon's own
//! rules before anything is written (a configuration the nodes would reject never reaches the DCS),
//! shows the diff, asks, and writes with compare-and-swap on the version it read, so an edit made
//! meanwhile by someone else is never overwritten.

use crate::args::EditConfigArgs;
use crate::context::Ctl;
use crate::diff;
use crate::editor;
use crate::error::{CtlError, CtlResult};
use crate::output;
use crate::prompt;
use crate::yaml_in;
use crate::yaml_out::to_yaml;
use ferroni_dcs::Dcs;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read};

const STDIN: &str = "-";

pub async fn show(ctl: &Ctl, cluster: Option<&str>) -> CtlResult<()> {
    let name = ctl.cluster_name(cluster)?;
    let view = ctl.dcs(&name)?.load().await?;
    let config = view
        .config
        .map(|c| c.value)
        .unwrap_or_else(|| Value::Object(Map::new()));
    output::print(&to_yaml(&config));
    Ok(())
}

pub async fn edit(ctl: &Ctl, args: &EditConfigArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(args.cluster_name.as_deref())?;
    let stdin_sources = [&args.apply, &args.replace]
        .iter()
        .filter(|s| s.as_deref() == Some(STDIN))
        .count();
    if stdin_sources > 1 {
        return Err(CtlError::usage("--apply and --replace cannot both read standard input"));
    }
    let dcs = ctl.dcs(&name)?;
    let view = dcs.load().await?;
    let (current, version) = match view.config {
        Some(c) => (c.value, Some(c.version)),
        None => (Value::Object(Map::new()), None),
    };
    let before = to_yaml(&current);

    let mut changed = current.clone();
    let mut requested = false;
    if let Some(source) = &args.replace {
        changed = read_yaml(source, "--replace")?;
        requested = true;
    }
    if let Some(source) = &args.apply {
        let patch = read_yaml(source, "--apply")?;
        ferroni_config::merge_patch(&mut changed, &patch);
        requested = true;
    }
    let pg_pairs = args
        .pg
        .iter()
        .map(|p| format!("postgresql.parameters.{}", p.trim_start()));
    for pair in args.set.iter().cloned().chain(pg_pairs) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| CtlError::usage(format!("Invalid parameter setting {pair}")))?;
        ferroni_config::set_path(&mut changed, key, value).map_err(|e| CtlError::usage(e.to_string()))?;
        requested = true;
    }
    if !requested {
        changed = editor::edit(&before, &name)?;
        if changed.is_null() {
            // An emptied file means an empty configuration, not the JSON value `null`.
            changed = Value::Object(Map::new());
        }
    }

    if changed == current {
        if !args.quiet {
            output::print("Not changed\n");
        }
        return Ok(());
    }
    ferroni_config::validate_dynamic(&changed)
        .map_err(|e| CtlError::usage(format!("invalid configuration, nothing was changed: {e}")))?;

    if !args.quiet {
        print_diff(&before, &to_yaml(&changed));
    }
    if !args.force {
        if stdin_sources > 0 {
            return Err(CtlError::failed(
                "Use --force option to apply changes (standard input was used for the new configuration, so there is no way to confirm)",
            ));
        }
        if !std::io::stdin().is_terminal() {
            return Err(CtlError::failed(
                "not applied: confirming needs a terminal on standard input; use --force to apply without confirmation",
            ));
        }
        if !prompt::confirm("Apply these changes?")? {
            output::print("Not applied\n");
            return Ok(());
        }
    }
    if !dcs.write_config(&changed, version).await? {
        return Err(CtlError::failed(
            "Config modification aborted due to concurrent changes",
        ));
    }
    output::print("Configuration changed\n");
    Ok(())
}

/// A YAML document from a file or (`-`) standard input. An empty document means "nothing": an empty
/// configuration for --replace, no change for --apply.
fn read_yaml(source: &str, option: &str) -> CtlResult<Value> {
    let (what, text) = if source == STDIN {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CtlError::failed(format!("{option}: cannot read standard input: {e}")))?;
        ("standard input".to_string(), text)
    } else {
        let text = std::fs::read_to_string(source)
            .map_err(|e| CtlError::usage(format!("{option}: cannot read {source}: {e}")))?;
        (source.to_string(), text)
    };
    match yaml_in::parse(&text).map_err(|e| CtlError::usage(format!("{option}: {what}: {e}")))? {
        Value::Null => Ok(Value::Object(Map::new())),
        v @ Value::Object(_) => Ok(v),
        other => Err(CtlError::usage(format!(
            "{option}: {what}: expected a map of configuration keys, got {}",
            match other {
                Value::Array(_) => "a list".to_string(),
                scalar => scalar.to_string(),
            }
        ))),
    }
}

fn print_diff(before: &str, after: &str) {
    let color = std::io::stdout().is_terminal();
    let mut out = String::new();
    for line in diff::unified(before, after) {
        let code = match line.as_bytes().first() {
            _ if !color => None,
            Some(b'@') => Some("36"),
            Some(b'-') if !line.starts_with("--- ") => Some("31"),
            Some(b'+') if !line.starts_with("+++ ") => Some("32"),
            _ => None,
        };
        match code {
            Some(c) => out.push_str(&format!("\x1b[{c}m{line}\x1b[0m\n")),
            None => {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    output::print(&out);
}
