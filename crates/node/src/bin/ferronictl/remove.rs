//! `remove`: deletes every key of a cluster from the DCS after the confirmations patronictl asks
//! for: the cluster name, the sentence "Yes I am aware", and, while a leader holds the lock, the
//! leader's name. There is no `--force`; scripts answer on standard input, one line per question.

use crate::args::RemoveArgs;
use crate::context::Ctl;
use crate::error::{CtlError, CtlResult};
use crate::list::{self, ListOptions};
use crate::output;
use crate::prompt;
use ferroni_dcs::Dcs;

const AWARE: &str = "Yes I am aware";

pub async fn run(ctl: &Ctl, args: &RemoveArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(Some(&args.cluster_name))?;
    let dcs = ctl.dcs(&name)?;
    let view = dcs.load().await?;
    let opts = ListOptions {
        extended: false,
        timestamp: false,
        format: args.format,
        interval: None,
        topology: false,
    };
    output::print(&list::render(&view, &name, &opts));

    if prompt::ask("Please confirm the cluster name to remove")? != name {
        return Err(CtlError::failed("Cluster names specified do not match"));
    }
    let question = format!("You are about to remove all information in DCS for {name}, please type: \"{AWARE}\"");
    if prompt::ask(&question)? != AWARE {
        return Err(CtlError::failed(format!("You did not exactly type \"{AWARE}\"")));
    }
    if let Some(leader) = view.leader_name().filter(|l| !l.is_empty()) {
        let answer = prompt::ask("This cluster currently is healthy. Please specify the leader name to continue")?;
        if answer != leader {
            return Err(CtlError::failed(
                "You did not specify the current leader of the cluster",
            ));
        }
    }
    dcs.delete_cluster().await?;
    Ok(())
}
