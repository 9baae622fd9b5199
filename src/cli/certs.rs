//! `rollguard certs`: a CA and a serving certificate for the webhook Service.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::CliError;
use crate::certs::{self, CertRequest};

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, default_value = "rollguard")]
    pub service: String,

    /// Namespace of the webhook's Service.
    #[arg(long, default_value = "rollguard-system")]
    pub namespace: String,

    /// Directory to write tls.crt, tls.key, ca.crt, secret.yaml and cabundle-patch.yaml into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Validity of the serving certificate in days (the CA lives ten times longer).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub days: i64,
}

pub(super) fn run(args: CertsArgs) -> Result<ExitCode, CliError> {
    let request = CertRequest {
        service: args.service,
        namespace: args.namespace,
        valid_days: args.days,
    };
    let bundle = certs::generate(&request).map_err(CliError::failed)?;
    for path in certs::write(&bundle, &request, &args.out).map_err(CliError::failed)? {
        println!("wrote {path}");
    }
    println!("serving certificate for {}", bundle.dns_names.join(", "));
    Ok(ExitCode::SUCCESS)
}
