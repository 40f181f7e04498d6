//! `policy-compiler`: Microkubes/Ladon policies, keys and settings in; the bundle the filter
//! loads out. Also checks, explains and tests policies.
//!
//! Exit codes: 0 success (explain: allowed); 1 the input has errors (check: errors, or
//! warnings with --strict); 2 usage; 3 explain: denied, test: an expectation failed;
//! 4 a file cannot be read or written; 5 the compiled table and the reference evaluator
//! disagree (a bug: please report it).


use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use policy_compiler::{Format, commands};

#[derive(Parser)]
#[command(name = "policy-compiler", version, about = "Compile, check, explain and test ACL policies for the proxy-wasm policy filter")]
struct Cli {
    /// Output for people (default) or machines.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}


#[derive(Subcommand)]
enum Command {
    /// Compile a policy file into the bundle (the filter's plugin configuration).
    Compile {
        /// The policy file (JSON or YAML): a Microkubes config, an acl section, or a policy list.
        policies: PathBuf,
        /// Where to write the bundle (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Report errors and risks: bad regexes, unbalanced <>, duplicate ids, policies that can
    /// never apply or are shadowed by a deny, suspiciously broad allows, weak keys.
    Check {
        policies: PathBuf,
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Show the decision for one request and why each policy applied or not.
    Explain {
        policies: PathBuf,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long)]
        path: String,
        /// Verified claims as a JSON object (e.g. '{"username":"ana","roles":["user"]}').
        #[arg(long)]
        claims: Option<String>,
        /// A JWT whose payload is used as the claims. It is NOT verified here.
        #[arg(long)]
        token: Option<String>,
        /// The client address, for CIDR conditions.
        #[arg(long)]
        client_ip: Option<String>,
        /// The provider that verified the token (`mtls` for a client certificate); by
        /// default the one the claims' `iss` chooses, as in the filter.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Run a file of expected decisions against the policies (for CI, like `opa test`).
    Test { policies: PathBuf, tests: PathBuf },
    /// Summarise a bundle: counts, hash, sizes, providers and keys.
    Inspect { bundle: PathBuf },
    /// Print the JWKS upstreams verify the filter's minted tokens with (`filter.mint`).
    Jwks { policies: PathBuf },
    /// Fill a proxy configuration template with a bundle ({{bundle:json-string}},
    /// {{bundle:json}}, {{bundle:nginx}}).
    Render {
        template: PathBuf,
        #[arg(long)]
        bundle: PathBuf,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}


fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Compile { policies, output } => commands::compile(&policies, output.as_deref(), cli.format),
        Command::Check { policies, strict } => commands::check(&policies, strict, cli.format),
        Command::Explain { policies, method, path, claims, token, client_ip, provider } => {
            let ask = commands::Ask { method, path, claims, token, client_ip, provider };
            commands::explain(&policies, &ask, cli.format)
        }
        Command::Test { policies, tests } => commands::test(&policies, &tests, cli.format),
        Command::Inspect { bundle } => commands::inspect(&bundle, cli.format),
        Command::Jwks { policies } => commands::jwks(&policies, cli.format),
        Command::Render { template, bundle, output } => commands::render(&template, &bundle, output.as_deref()),
    };
    ExitCode::from(exit as u8)
}
