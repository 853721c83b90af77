//! DynamoDB Local's command line, so that Haven replaces it without anyone editing their scripts:
//! `haven -jar DynamoDBLocal.jar -sharedDb -inMemory -port 8000` (what images, compose files and
//! Testcontainers modules pass to `amazon/dynamodb-local`, whose entry point is `java`) runs
//! `haven serve` with the matching options.
//!
//! The arguments are translated into `haven serve`'s own, so every default and check of `serve`
//! applies; JVM options (`-D...`, `-X...`), a leading `java` and `-jar <file>` are ignored. Rules
//! follow DynamoDB Local 3.3 (observed): listening on every interface (`HAVEN_HOST` chooses
//! another address), `-dbPath` defaulting to the current directory, `-dbPath` and `-inMemory`
//! exclusive, separate tables per access key id and region unless `-sharedDb`, key ids of
//! letters and digits only. Unlike DynamoDB Local, a wrong option exits with status 2 instead of 0.

use std::ffi::OsString;

/// DynamoDB Local's usage, with what Haven does with each option.
const USAGE: &str = "\
usage: haven -jar DynamoDBLocal.jar [-port <port-no.>] [-inMemory] [-delayTransientStatuses]
            [-dbPath <path>] [-sharedDb] [-disableTelemetry] [-optimizeDbBeforeStartup]
            [-cors <allow-list>] [-help] [-version]
Haven understands DynamoDB Local's options (the `java` and `-jar DynamoDBLocal.jar` prefix and JVM
options are accepted and ignored):
 -port <port-no.>          Port to listen on (default 8000), on every interface as DynamoDB Local
                           does; set HAVEN_HOST to listen on one address only.
 -inMemory                 Keep everything in memory (haven serve --in-memory).
 -dbPath <path>            Directory of the data (default: the current directory); Haven keeps
                           each database in a folder named like DynamoDB Local's file, with .haven.
 -sharedDb                 One set of tables for every access key id and region; without it,
                           each access key id and region sees its own tables.
 -cors <allow-list>        Origins allowed to call from a browser, separated by commas, or '*'
                           (the default).
 -delayTransientStatuses   Tables and indexes stay CREATING, UPDATING or DELETING for a while
                           (HAVEN_TRANSIENT_STATUS_MS, default 500) so that waiters are exercised.
 -disableTelemetry         Accepted; Haven sends no telemetry.
 -optimizeDbBeforeStartup  Accepted; Haven's storage needs no optimisation pass.
 -help                     This text.
 -version                  Haven's version.
For everything else, run `haven serve --help`.
";

/// Whether the command line is DynamoDB Local's rather than Haven's: its first argument is one of
/// DynamoDB Local's options, `-jar`, a JVM option or `java`.
pub fn is_dynamodb_local(args: &[OsString]) -> bool {
    let Some(first) = args.get(1).and_then(|a| a.to_str()) else {
        return false;
    };
    first == "java"
        || first == "-jar"
        || first.starts_with("-D")
        || first.starts_with("-X")
        || FLAGS.iter().any(|(flag, _)| *flag == first)
}

/// DynamoDB Local's options and whether each takes a value.
const FLAGS: [(&str, bool); 10] = [
    ("-port", true),
    ("-inMemory", false),
    ("-dbPath", true),
    ("-sharedDb", false),
    ("-cors", true),
    ("-delayTransientStatuses", false),
    ("-disableTelemetry", false),
    ("-optimizeDbBeforeStartup", false),
    ("-help", false),
    ("-version", false),
];

/// The environment variables that complete DynamoDB Local's options.
#[derive(Debug, Default)]
pub struct Environment {
    /// `HAVEN_HOST`: the address to listen on instead of every interface.
    pub host: Option<String>,
    /// `HAVEN_TRANSIENT_STATUS_MS`: how long transient statuses last with
    /// `-delayTransientStatuses`.
    pub transient_status_ms: Option<String>,
}

impl Environment {
    pub fn read() -> Environment {
        Environment {
            host: std::env::var("HAVEN_HOST").ok(),
            transient_status_ms: std::env::var("HAVEN_TRANSIENT_STATUS_MS").ok(),
        }
    }
}

/// What a DynamoDB Local command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Serve with these `haven` arguments (`serve ...`).
    Serve(Vec<String>),
    /// Print this and exit successfully.
    Print(String),
}

/// DynamoDB Local's options as given.
#[derive(Default)]
struct Options {
    port: Option<String>,
    in_memory: bool,
    db_path: Option<String>,
    shared_db: bool,
    cors: Option<String>,
    delay: bool,
    help: bool,
    version: bool,
}

/// Translates a DynamoDB Local command line (`args[0]` is the program) into `haven serve`'s, or
/// says what is wrong with it, in DynamoDB Local's words where it has some.
/// `env` holds what the environment chooses: `HAVEN_HOST` and `HAVEN_TRANSIENT_STATUS_MS`.
pub fn translate(args: &[OsString], env: &Environment) -> Result<Request, String> {
    let options = parse(args)?;
    if options.help {
        return Ok(Request::Print(USAGE.to_string()));
    }
    if options.version {
        return Ok(Request::Print(format!(
            "Haven {} (DynamoDB Local's command line)\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let port = match &options.port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or("Invalid Port. Port number must lie between 1 and 65535.")?,
        None => 8000,
    };
    if options.in_memory && options.db_path.is_some() {
        return Err("dbPath and inMemory cannot be set at the same time.".into());
    }
    let host = env.host.clone().unwrap_or_else(|| "0.0.0.0".into());
    let listen = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut serve: Vec<String> = vec!["serve".into(), "--listen".into(), listen];
    if options.in_memory {
        serve.push("--in-memory".into());
    } else {
        let dir = options.db_path.unwrap_or_else(|| ".".into());
        serve.extend(["--data-dir".into(), dir]);
    }
    let isolation = if options.shared_db {
        "shared"
    } else {
        "key-region"
    };
    serve.extend([
        "--isolation".into(),
        isolation.into(),
        "--local-key-ids".into(),
    ]);
    serve.extend(["--cors".into(), options.cors.unwrap_or_else(|| "*".into())]);
    // DynamoDB Local never throttles; applications tested against it expect none.
    serve.extend(["--capacity".into(), "off".into()]);
    if options.delay {
        let ms = env.transient_status_ms.clone();
        serve.extend([
            "--transient-status-ms".into(),
            ms.unwrap_or_else(|| "500".into()),
        ]);
    }
    Ok(Request::Serve(serve))
}

/// Reads the options; JVM options, `java` and `-jar <file>` are skipped.
fn parse(args: &[OsString]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut rest = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let mut first = true;
    while let Some(arg) = rest.next() {
        let is_first = std::mem::take(&mut first);
        if (is_first && arg == "java") || arg.starts_with("-D") || arg.starts_with("-X") {
            continue;
        }
        if arg == "-jar" {
            rest.next();
            continue;
        }
        let Some((flag, takes_value)) = FLAGS.iter().find(|(f, _)| *f == arg) else {
            return Err(format!(
                "Error while parsing options. Unrecognized option: {arg}\n{USAGE}"
            ));
        };
        let value = if *takes_value {
            Some(
                rest.next()
                    .ok_or_else(|| format!("Missing argument for option: {}", &flag[1..]))?,
            )
        } else {
            None
        };
        options.set(flag, value);
    }
    Ok(options)
}

impl Options {
    fn set(&mut self, flag: &str, value: Option<String>) {
        match flag {
            "-port" => self.port = value,
            "-inMemory" => self.in_memory = true,
            "-dbPath" => self.db_path = value,
            "-sharedDb" => self.shared_db = true,
            "-cors" => self.cors = value,
            "-delayTransientStatuses" => self.delay = true,
            "-help" => self.help = true,
            "-version" => self.version = true,
            // -disableTelemetry, -optimizeDbBeforeStartup: nothing to do.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        std::iter::once("haven")
            .chain(line.split_whitespace())
            .map(OsString::from)
            .collect()
    }

    fn serve(line: &str) -> Vec<String> {
        match translate(&args(line), &Environment::default()).unwrap() {
            Request::Serve(serve) => serve,
            Request::Print(text) => panic!("printed {text}"),
        }
    }

    #[test]
    fn the_image_default_is_in_memory_per_key_region() {
        let line = "-jar DynamoDBLocal.jar -inMemory";
        assert!(is_dynamodb_local(&args(line)));
        assert_eq!(
            serve(line),
            [
                "serve",
                "--listen",
                "0.0.0.0:8000",
                "--in-memory",
                "--isolation",
                "key-region",
                "--local-key-ids",
                "--cors",
                "*",
                "--capacity",
                "off"
            ]
        );
    }

    #[test]
    fn the_documented_java_line_with_a_db_path() {
        let line = "java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -sharedDb -dbPath ./data -port 8001 -cors http://a.example -delayTransientStatuses -disableTelemetry -optimizeDbBeforeStartup";
        assert!(is_dynamodb_local(&args(line)));
        let serve = serve(line);
        assert_eq!(
            &serve[..5],
            ["serve", "--listen", "0.0.0.0:8001", "--data-dir", "./data"]
        );
        assert_eq!(
            &serve[5..],
            [
                "--isolation",
                "shared",
                "--local-key-ids",
                "--cors",
                "http://a.example",
                "--capacity",
                "off",
                "--transient-status-ms",
                "500"
            ]
        );
    }

    #[test]
    fn haven_command_lines_are_left_alone() {
        assert!(!is_dynamodb_local(&args("serve --in-memory")));
        assert!(!is_dynamodb_local(&args("--help")));
        assert!(!is_dynamodb_local(&args("")));
    }

    #[test]
    fn errors_use_dynamodb_locals_words() {
        let error = |line: &str| translate(&args(line), &Environment::default()).unwrap_err();
        assert!(error("-inMemory -bogus").contains("Unrecognized option: -bogus"));
        // Case matters, as in DynamoDB Local.
        assert!(error("-inMemory -sharedDB").contains("Unrecognized option: -sharedDB"));
        assert_eq!(
            error("-port 70000"),
            "Invalid Port. Port number must lie between 1 and 65535."
        );
        assert_eq!(
            error("-inMemory -dbPath /tmp"),
            "dbPath and inMemory cannot be set at the same time."
        );
        assert_eq!(error("-port"), "Missing argument for option: port");
    }

    #[test]
    fn help_and_version_print() {
        let printed = |line: &str| match translate(&args(line), &Environment::default()).unwrap() {
            Request::Print(text) => text,
            Request::Serve(_) => panic!("served"),
        };
        assert!(printed("-help").contains("-sharedDb"));
        assert!(printed("-jar DynamoDBLocal.jar -version").starts_with("Haven "));
    }

    #[test]
    fn haven_host_chooses_the_address() {
        let env = Environment {
            host: Some("127.0.0.1".into()),
            transient_status_ms: Some("50".into()),
        };
        let request = translate(&args("-inMemory -port 9000 -delayTransientStatuses"), &env);
        let Ok(Request::Serve(serve)) = request else {
            panic!("{request:?}")
        };
        assert_eq!(serve[2], "127.0.0.1:9000");
        assert_eq!(serve[serve.len() - 2..], ["--transient-status-ms", "50"]);
    }
}
