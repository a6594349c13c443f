//! The command line (`bench/LOADGEN_CONTRACT.md` lists every flag; the names and defaults
//! here are that contract) and the checks a run's arguments must pass before anything starts.

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "hearth-loadgen",
    version,
    about = "WebSocket load generator for Hearth and its peer servers (loopback only).",
    long_about = "WebSocket load generator for Hearth and its peer servers (loopback only).\n\
                  Contract: bench/LOADGEN_CONTRACT.md."
)]
pub struct Args {
    /// WebSocket URL of the server under test (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    pub url: String,
    /// WebSocket URL of a second node of the same Hearth cluster (loopback only): every
    /// other connection goes there, so one room spans both nodes.
    #[arg(long)]
    pub also: Option<String>,
    /// Wire protocol the server speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Hearth)]
    pub protocol: Protocol,
    /// Number of connections.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Connections opened per second.
    #[arg(long, default_value_t = 1000.0)]
    pub ramp: f64,
    /// Rooms the connections are spread over, round-robin (hearth only).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// How many of the connections send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages per second in total, spread over the senders.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of sending (after all connections are up); with --idle, seconds to hold.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes per message body (token + send time + padding).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Non-sending connections that stop reading after joining and catch up at the end.
    #[arg(long, default_value_t = 0)]
    pub slow: usize,
    /// Non-sending connections that send a `typing` frame every --typing-every seconds
    /// while the others send (hearth only).
    #[arg(long, default_value_t = 0)]
    pub typists: usize,
    /// Seconds between one typist's `typing` frames (Hearth's browser sends one per 3 s).
    #[arg(long, default_value_t = 3.0)]
    pub typing_every: f64,
    /// Seconds to wait for in-flight deliveries after sending stops.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// PID whose resident memory (VmRSS) is sampled before connecting and at the end.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Open the connections, hold them for --duration seconds, measure memory, send nothing.
    #[arg(long)]
    pub idle: bool,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Hearth's JSON protocol (docs/protocol.md).
    Hearth,
    /// Every text frame is broadcast to every connection, the sender included.
    Raw,
    /// Socket.IO v4 over Engine.IO v4 (WebSocket transport), event "chat".
    Socketio,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Hearth => "hearth",
            Protocol::Raw => "raw",
            Protocol::Socketio => "socketio",
        }
    }
}

pub fn check_args(args: &Args) -> Result<(), String> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(format!("--{name} must be a positive number"))
        }
    };
    positive("ramp", args.ramp)?;
    if !(args.duration.is_finite() && args.duration >= 0.0) {
        return Err("--duration must be zero or more seconds".into());
    }
    if !(args.drain.is_finite() && args.drain >= 0.0) {
        return Err("--drain must be zero or more seconds".into());
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err("--rate must be zero or more messages per second".into());
    }
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if args.senders + args.slow + args.typists > args.connections {
        return Err(format!(
            "--senders ({}) + --slow ({}) + --typists ({}) cannot exceed --connections ({}): \
             each connection plays one part",
            args.senders, args.slow, args.typists, args.connections
        ));
    }
    positive("typing-every", args.typing_every)?;
    if args.protocol != Protocol::Hearth && args.typists > 0 {
        return Err("--typists applies to hearth only: the peers have no typing frame".into());
    }
    if args.protocol == Protocol::Hearth && args.size > 4000 {
        return Err("--size is limited to 4000 bytes for hearth (its message limit)".into());
    }
    if args.protocol != Protocol::Hearth && args.rooms > 1 {
        eprintln!("hearth-loadgen: --rooms applies to hearth only; using one room");
    }
    Ok(())
}
