//! `campaign serve`: a campaign's model behind an OpenAI-compatible API, so
//! that a served stack can be measured against the in-process one.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{CommandError, exit, load_named_model};
use crate::campaign::Campaign;
use crate::campaign::bounds::{Dimension, Int, IntRange, Seconds};
use crate::components::server::{ApiKey, ServeOptions, Server, SimulatedService};
use crate::output::OutputLayout;
use crate::runner::wait_for_stop;

/// Requests that may wait for the engine (`--max-queue`). 0 refuses every
/// request that would wait; past 1024 the bodies the server may hold at
/// once (4 MiB each) exceed 4 GiB.
#[derive(Debug)]
pub enum QueuedRequestRange {}

impl IntRange for QueuedRequestRange {
    const MIN: u64 = 0;
    const MAX: u64 = 1024;
    const WHAT: &'static str = "queued requests";
}

pub type QueuedRequests = Int<QueuedRequestRange>;

/// MiB of KV the prefix cache may hold (`--prefix-cache-mib`); 0 turns
/// prefix caching off.
#[derive(Debug)]
pub enum PrefixCacheMibRange {}

impl IntRange for PrefixCacheMibRange {
    const MIN: u64 = 0;
    const MAX: u64 = 1 << 20;
    const WHAT: &'static str = "MiB";
}

pub type PrefixCacheMib = Int<PrefixCacheMibRange>;

/// `--prefix-cache-mib` when not given: off. A served run is compared
/// with the in-process engine request for request, and a benchmark sends
/// its seeded prompts again at every iteration: a cache on by default
/// would serve later iterations from earlier ones and shift every served
/// figure. Shaped traffic, which is what it is for, asks for it.
pub const DEFAULT_PREFIX_CACHE_MIB: u64 = 0;

/// `--prefix-block-tokens` when not given: vLLM's block size.
pub const DEFAULT_PREFIX_BLOCK_TOKENS: u64 = 16;

/// `--max-queue` when not given: more than a benchmark's concurrency
/// sweep usually reaches, few enough that the wait behind the queue stays
/// within `--max-wait-s` on small models.
pub const DEFAULT_MAX_QUEUE: u64 = 64;

/// `--max-wait-s` when not given: OpenAI clients time out after 600 s,
/// benchmark clients sooner; a minute in the queue already means the
/// server is overloaded.
pub const DEFAULT_MAX_WAIT_S: f64 = 60.0;

pub struct ServeArgs {
    pub model: String,
    pub addr: SocketAddr,
    /// Where each request is logged (default: `serve_requests.jsonl` in the
    /// campaign's results folder).
    pub request_log: Option<PathBuf>,
    /// The environment variable that holds the API key, if one is required.
    pub api_key_env: Option<String>,
    pub max_queue: QueuedRequests,
    pub max_wait_s: Seconds,
    pub simulate: Option<SimulatedService>,
    pub prefix_cache_mib: PrefixCacheMib,
    pub prefix_block_tokens: Dimension,
}

/// Parses `--max-queue` (a clap value parser).
pub fn parse_max_queue(text: &str) -> Result<QueuedRequests, String> {
    QueuedRequests::parse(text)
}

/// Parses `--max-wait-s`.
pub fn parse_max_wait_s(text: &str) -> Result<Seconds, String> {
    Seconds::parse(text)
}

/// Parses `--addr`: `IP:PORT`, or `localhost:PORT` (as 127.0.0.1, the
/// address llama-server binds by default). Other host names are refused
/// rather than resolved: a name can resolve to a public address.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(Ok(port)) = text.strip_prefix("localhost:").map(str::parse::<u16>) {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "{text:?} is not an address to listen on; allowed: IP:PORT (127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080) or localhost:PORT; port 0 picks a free one"
    ))
}

/// The warning for an address that other machines can reach, `None` for
/// a loopback one (127.0.0.0/8, ::1, and ::ffff:127.x.x.x).
pub fn exposure_warning(addr: SocketAddr, key_required: bool) -> Option<String> {
    if addr.ip().to_canonical().is_loopback() {
        return None;
    }
    let reach = if addr.ip().is_unspecified() {
        "every network interface of this machine"
    } else {
        "a network interface of this machine"
    };
    Some(if key_required {
        format!(
            "warning: serving on {addr}, {reach}, over plain HTTP: requests need the API key, but the key and every prompt and answer cross the network unencrypted\n  help: bind 127.0.0.1 and put a TLS proxy in front to serve other machines"
        )
    } else {
        format!(
            "warning: serving on {addr}, {reach}, with no API key: anyone who can reach this port can use the model\n  help: require a key with --api-key-env VAR, or bind 127.0.0.1 to keep the server on this machine"
        )
    })
}

/// The key in the variable `var`. A missing, empty or unsendable key is a
/// usage error that names the variable and never quotes the value.
fn read_api_key(var: &str) -> Result<ApiKey, CommandError> {
    let usage = |why: String| {
        CommandError::Usage(format!(
            "--api-key-env {var}: {why}\n  help: export {var} with the key clients send as `Authorization: Bearer KEY`"
        ))
    };
    let value = match std::env::var(var) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => {
            return Err(usage(format!("the variable {var} is not set")));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(usage(format!("the variable {var} is not valid UTF-8")));
        }
    };
    ApiKey::new(&value).map_err(|e| usage(format!("the variable {var} holds no usable key: {e}")))
}

/// Loads the model, binds, prints `listening on http://ADDR` as the first
/// line on stdout (a script waits for it), and serves until Ctrl-C or
/// SIGTERM; requests in flight then finish. A second Ctrl-C exits at once.
pub fn serve_command(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &ServeArgs,
) -> Result<(String, u8), CommandError> {
    // Before the model loads: a missing key is a mistake to report at once.
    let api_key = args.api_key_env.as_deref().map(read_api_key).transpose()?;
    // The campaign's compute threads, as `run` uses them: before any
    // other thread starts (candle reads them on each matmul).
    crate::runner::configure_threads(campaign.settings.threads.usize());
    let (path, model) = load_named_model(campaign, layout, &args.model)?;
    let request_log = args
        .request_log
        .clone()
        .unwrap_or_else(|| layout.serve_requests());
    let key_required = api_key.is_some();
    let server = Server::bind(
        args.addr,
        model,
        ServeOptions {
            model_name: args.model.clone(),
            request_log,
            api_key,
            max_queue: args.max_queue.usize(),
            max_wait: Duration::try_from_secs_f64(args.max_wait_s.get()).unwrap_or(Duration::MAX),
            simulate: args.simulate,
            prefix_cache_mib: args.prefix_cache_mib.get(),
            prefix_block_tokens: args.prefix_block_tokens.usize(),
        },
    )?;
    let addr = server.local_addr()?;
    if let Some(warning) = exposure_warning(addr, key_required) {
        eprintln!("{warning}");
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on http://{addr}");
    let _ = stdout.flush();
    let engine = match args.simulate {
        Some(spec) => format!(
            "a simulated service ({} at once, exponential service of mean {} ms, seed {}; the model's tokenizer reads the prompts)",
            spec.slots,
            spec.mean_service.as_secs_f64() * 1e3,
            spec.seed
        ),
        None => format!(
            "{} thread(s), a prefix cache of {} in blocks of {} tokens",
            campaign.settings.threads,
            match args.prefix_cache_mib.get() {
                0 => "none (--prefix-cache-mib 0)".to_string(),
                mib => format!("{mib} MiB"),
            },
            args.prefix_block_tokens
        ),
    };
    eprintln!(
        "serving model {:?} ({}) with {engine}; requests logged to {}; {}; at most {} waiting, each for at most {} s; Ctrl-C stops",
        args.model,
        path.display(),
        server.request_log().display(),
        match &args.api_key_env {
            Some(var) => format!("API key required (from {var})"),
            None => "no API key required".into(),
        },
        args.max_queue,
        args.max_wait_s,
    );
    server.run(async {
        wait_for_stop().await;
        eprintln!("stopping: finishing the requests in flight (Ctrl-C again to quit at once)");
        tokio::spawn(async {
            wait_for_stop().await;
            std::process::exit(i32::from(exit::INTERRUPTED));
        });
    })?;
    Ok((String::new(), exit::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        parse_listen_addr(text).unwrap()
    }

    #[test]
    fn only_addresses_other_machines_can_reach_are_warned_about() {
        for quiet in [
            "127.0.0.1:0",
            "127.8.9.10:80",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
            "localhost:8080",
        ] {
            assert_eq!(exposure_warning(addr(quiet), false), None, "{quiet}");
        }
        for exposed in ["0.0.0.0:8080", "[::]:8080", "192.168.1.7:80"] {
            let warning = exposure_warning(addr(exposed), false).unwrap();
            assert!(warning.contains(exposed), "{warning}");
            assert!(warning.contains("anyone who can reach this port"));
            assert!(warning.contains("--api-key-env") && warning.contains("127.0.0.1"));
            let with_key = exposure_warning(addr(exposed), true).unwrap();
            assert!(with_key.contains("unencrypted"), "{with_key}");
        }
        assert_eq!(addr("localhost:8080"), addr("127.0.0.1:8080"));
        let refused = parse_listen_addr("example.com:80").unwrap_err();
        assert!(refused.contains("allowed: IP:PORT"), "{refused}");
    }

    #[test]
    fn flags_are_checked_against_their_ranges() {
        assert_eq!(parse_max_queue("0").map(QueuedRequests::get), Ok(0));
        assert_eq!(parse_max_queue("1024").map(QueuedRequests::get), Ok(1024));
        let refused = parse_max_queue("1025").unwrap_err();
        assert!(
            refused.contains("allowed: a whole number of queued requests from 0 to 1024"),
            "{refused}"
        );
        assert!(parse_max_queue("-1").is_err());
        assert!(parse_max_queue("many").unwrap_err().contains("allowed"));
        assert!(parse_max_wait_s("0").is_err());
        assert!(parse_max_wait_s("nan").is_err());
        assert_eq!(parse_max_wait_s("0.5").map(Seconds::get), Ok(0.5));
        assert!(QueuedRequests::check(i128::from(DEFAULT_MAX_QUEUE)).is_ok());
        // The simulated service's flags, through the same parsers.
        use crate::campaign::bounds::{Millis, Parallel};
        assert!(Parallel::parse("0").unwrap_err().contains("from 1 to 4096"));
        assert_eq!(Parallel::parse(" 4 ").map(Parallel::get), Ok(4));
        assert!(Millis::parse("-1").unwrap_err().contains("allowed"));
        assert!(Millis::parse("inf").is_err());
        assert_eq!(Millis::parse("20").map(Millis::get), Ok(20.0));
        assert!(Seconds::check(DEFAULT_MAX_WAIT_S).is_ok());
    }

    /// The Limits tables of docs/campaign-author.md quote the ranges exactly
    /// as errors say them (the ranges of campaign fields are checked in
    /// `bounds`).
    #[test]
    fn the_ranges_of_serve_flags_are_documented_in_the_docs() {
        let doc = include_str!("../../docs/campaign-author.md");
        for allowed in [QueuedRequests::allowed(), Seconds::allowed()] {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| {allowed} |")))
                .unwrap_or_else(|| panic!("no row for {allowed}"));
            let flag = if allowed.contains("queued") {
                "`--max-queue`"
            } else {
                "`--max-wait-s`"
            };
            assert!(row.contains(flag), "{row}");
        }
    }
}
