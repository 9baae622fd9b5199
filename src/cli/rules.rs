//! `rollguard rules`: the rule table, as text or as docs/rules.md.

use std::process::ExitCode;

use clap::Args;

use super::CliError;
use crate::catalog;

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Print docs/rules.md instead of the plain list.
    #[arg(long)]
    pub markdown: bool,
}

pub(super) fn run(args: &RulesArgs) -> Result<ExitCode, CliError> {
    let text = if args.markdown {
        catalog::rules_markdown()
    } else {
        catalog::rules_text()
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
