//! A small client for the GDB remote serial protocol: just what reading
//! RTT out of a halted target needs (no-ack mode, hardware breakpoints,
//! continue, interrupt, memory read and write).
//!
//! Packets are `$payload#xx` with `xx` the modulo-256 sum of the payload
//! in hex. Replies may be run-length encoded (`c*n` repeats `c` n - 29
//! more times) and escape `#$}*` as `}` followed by the byte xor 0x20.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Why a protocol exchange failed.
#[derive(Debug)]
pub enum RspError {
    /// The transport failed.
    Io(io::Error),
    /// No complete reply before the deadline.
    Timeout(&'static str),
    /// The stub answered something this client does not understand.
    Protocol(String),
}

impl fmt::Display for RspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "gdbstub connection: {e}"),
            Self::Timeout(what) => write!(f, "gdbstub did not answer in time ({what})"),
            Self::Protocol(msg) => write!(f, "gdbstub protocol: {msg}"),
        }
    }
}

impl std::error::Error for RspError {}

impl From<io::Error> for RspError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Why the target stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Halted by a signal (`S`/`T` reply): 5 for a breakpoint, 2 for an
    /// interrupt.
    Signal(u8),
    /// The program exited with this status (`W` reply).
    Exited(u8),
    /// The program was killed by this signal (`X` reply).
    Killed(u8),
}

/// Parses a stop reply.
pub fn parse_stop(payload: &[u8]) -> Result<Stop, RspError> {
    let code = |s: &[u8]| -> Result<u8, RspError> {
        let hex = s.get(..2).ok_or_else(|| bad("short stop reply", payload))?;
        u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
            .map_err(|_| bad("stop reply code", payload))
    };
    match payload.first() {
        Some(b'S' | b'T') => Ok(Stop::Signal(code(&payload[1..])?)),
        Some(b'W') => Ok(Stop::Exited(code(&payload[1..])?)),
        Some(b'X') => Ok(Stop::Killed(code(&payload[1..])?)),
        _ => Err(bad("not a stop reply", payload)),
    }
}

fn bad(what: &str, payload: &[u8]) -> RspError {
    RspError::Protocol(format!("{what}: {:?}", String::from_utf8_lossy(payload)))
}

/// Frames `payload` as a packet.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let sum = payload.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.push(b'$');
    out.extend_from_slice(payload);
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

/// Undoes escapes and run-length encoding of a received payload.
pub fn unescape(raw: &[u8]) -> Result<Vec<u8>, RspError> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'}' => {
                let b = *raw.get(i + 1).ok_or_else(|| bad("dangling escape", raw))?;
                out.push(b ^ 0x20);
                i += 2;
            }
            b'*' => {
                let last = *out
                    .last()
                    .ok_or_else(|| bad("run length with nothing before", raw))?;
                let n = *raw
                    .get(i + 1)
                    .ok_or_else(|| bad("dangling run length", raw))?;
                let repeats = usize::from(n)
                    .checked_sub(29)
                    .ok_or_else(|| bad("bad run length", raw))?;
                out.extend(std::iter::repeat_n(last, repeats));
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string.
pub fn from_hex(hex: &[u8]) -> Result<Vec<u8>, RspError> {
    if !hex.len().is_multiple_of(2) {
        return Err(bad("odd-length hex", hex));
    }
    hex.chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| bad("not hex", hex))
        })
        .collect()
}

/// The client over any byte stream (a `TcpStream` to QEMU; a fake in tests).
///
/// The stream must have a short read timeout (reads returning
/// `WouldBlock`/`TimedOut`) so deadlines can be kept.
pub struct Client<S> {
    stream: S,
    buf: Vec<u8>,
    acks: bool,
}

impl<S: Read + Write> Client<S> {
    /// A client that acknowledges packets until [`Client::start_no_ack`].
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            acks: true,
        }
    }

    fn fill(&mut self, deadline: Instant, what: &'static str) -> Result<(), RspError> {
        let mut chunk = [0u8; 4096];
        loop {
            if Instant::now() >= deadline {
                return Err(RspError::Timeout(what));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(RspError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "gdbstub closed the connection",
                    )));
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next packet's payload, or `None` if nothing complete arrived
    /// before `deadline` (when `wait_ok` is false the timeout is not an error).
    fn read_packet(&mut self, deadline: Instant, what: &'static str) -> Result<Vec<u8>, RspError> {
        loop {
            // Skip acks and noise before '$'.
            if let Some(start) = self.buf.iter().position(|&b| b == b'$') {
                self.buf.drain(..start);
                if let Some(hash) = self.buf.iter().position(|&b| b == b'#')
                    && self.buf.len() >= hash + 3
                {
                    let raw = self.buf[1..hash].to_vec();
                    let sum_hex = self.buf[hash + 1..hash + 3].to_vec();
                    self.buf.drain(..hash + 3);
                    let want = from_hex(&sum_hex)?.first().copied().unwrap_or(0);
                    let got = raw.iter().fold(0u8, |a, &b| a.wrapping_add(b));
                    if want != got {
                        return Err(bad("checksum mismatch", &raw));
                    }
                    if self.acks {
                        self.stream.write_all(b"+")?;
                    }
                    return unescape(&raw);
                }
            } else {
                self.buf.clear();
            }
            self.fill(deadline, what)?;
        }
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), RspError> {
        self.stream.write_all(&frame(payload))?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends a packet and returns the reply's payload.
    pub fn request(&mut self, payload: &[u8], timeout: Duration) -> Result<Vec<u8>, RspError> {
        self.send(payload)?;
        self.read_packet(Instant::now() + timeout, "reply")
    }

    fn expect_ok(&mut self, payload: &[u8], timeout: Duration) -> Result<(), RspError> {
        let reply = self.request(payload, timeout)?;
        if reply == b"OK" {
            Ok(())
        } else {
            Err(RspError::Protocol(format!(
                "{} answered {:?}",
                String::from_utf8_lossy(payload),
                String::from_utf8_lossy(&reply)
            )))
        }
    }

    /// Announces the client's features, then switches the stub to no-ack
    /// mode (fewer round trips) when it offers it; returns whether it did.
    pub fn start_no_ack(&mut self, timeout: Duration) -> Result<bool, RspError> {
        let features = self.request(b"qSupported:swbreak+;hwbreak+", timeout)?;
        let offered = features
            .split(|&b| b == b';')
            .any(|f| f == b"QStartNoAckMode+");
        if offered {
            self.expect_ok(b"QStartNoAckMode", timeout)?;
            self.acks = false;
        }
        Ok(offered)
    }

    /// Sets (`insert`) or clears a hardware breakpoint at `addr`.
    pub fn hw_breakpoint(
        &mut self,
        addr: u32,
        insert: bool,
        timeout: Duration,
    ) -> Result<(), RspError> {
        let op = if insert { 'Z' } else { 'z' };
        self.expect_ok(format!("{op}1,{addr:x},2").as_bytes(), timeout)
    }

    /// Resumes the target without waiting for it to stop.
    pub fn resume(&mut self) -> Result<(), RspError> {
        self.send(b"c")
    }

    /// Waits for a stop reply; `Ok(None)` if the target is still running
    /// at `deadline`.
    pub fn wait_stop(&mut self, deadline: Instant) -> Result<Option<Stop>, RspError> {
        match self.read_packet(deadline, "stop") {
            Ok(p) => parse_stop(&p).map(Some),
            Err(RspError::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Interrupts a running target (a raw 0x03 byte) and waits for it to
    /// stop (or to report that it exited meanwhile).
    pub fn interrupt(&mut self, timeout: Duration) -> Result<Stop, RspError> {
        self.stream.write_all(&[0x03])?;
        self.stream.flush()?;
        let p = self.read_packet(Instant::now() + timeout, "interrupt")?;
        parse_stop(&p)
    }

    /// Reads `len` bytes of target memory at `addr` (in chunks).
    pub fn read_memory(
        &mut self,
        addr: u32,
        len: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, RspError> {
        const CHUNK: usize = 1024;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = CHUNK.min(len - out.len());
            let at = addr
                .checked_add(u32::try_from(out.len()).unwrap_or(u32::MAX))
                .ok_or_else(|| RspError::Protocol("address overflow".into()))?;
            let reply = self.request(format!("m{at:x},{n:x}").as_bytes(), timeout)?;
            if reply.first() == Some(&b'E') && reply.len() == 3 {
                return Err(RspError::Protocol(format!(
                    "reading {n} bytes at {at:#x} failed ({})",
                    String::from_utf8_lossy(&reply)
                )));
            }
            let bytes = from_hex(&reply)?;
            if bytes.is_empty() || bytes.len() > n {
                return Err(RspError::Protocol(format!(
                    "read of {n} bytes at {at:#x} returned {}",
                    bytes.len()
                )));
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Reads a little-endian word.
    pub fn read_u32(&mut self, addr: u32, timeout: Duration) -> Result<u32, RspError> {
        let b = self.read_memory(addr, 4, timeout)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes `bytes` to target memory at `addr`.
    pub fn write_memory(
        &mut self,
        addr: u32,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), RspError> {
        self.expect_ok(
            format!("M{addr:x},{:x}:{}", bytes.len(), to_hex(bytes)).as_bytes(),
            timeout,
        )
    }

    /// Writes a little-endian word.
    pub fn write_u32(&mut self, addr: u32, value: u32, timeout: Duration) -> Result<(), RspError> {
        self.write_memory(addr, &value.to_le_bytes(), timeout)
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted stub: each packet the client sends is answered with the
    /// next scripted reply bytes; everything written is recorded.
    struct Fake {
        replies: VecDeque<Vec<u8>>,
        pending: Vec<u8>,
        written: Vec<u8>,
    }

    impl Fake {
        fn new(replies: &[&[u8]]) -> Self {
            Self {
                replies: replies.iter().map(|r| r.to_vec()).collect(),
                pending: Vec::new(),
                written: Vec::new(),
            }
        }
    }

    impl Read for Fake {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = out.len().min(self.pending.len());
            out[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    impl Write for Fake {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(data);
            // A packet (or the interrupt byte) triggers the next reply.
            let packet = data.len() >= 3 && data[data.len() - 3] == b'#';
            if (packet || data == [3])
                && let Some(r) = self.replies.pop_front()
            {
                self.pending.extend_from_slice(&r);
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const T: Duration = Duration::from_millis(200);

    #[test]
    fn frames_with_the_modulo_256_checksum() {
        // The protocol's own example: "$OK#9a" (0x4f + 0x4b = 0x9a).
        assert_eq!(frame(b"OK"), b"$OK#9a");
        assert_eq!(frame(b""), b"$#00");
        assert_eq!(frame(b"m20000000,4"), b"$m20000000,4#4f");
    }

    #[test]
    fn unescapes_and_expands_run_lengths() {
        // "0* " is '0' then 32 - 29 = 3 more: "0000".
        assert_eq!(unescape(b"0* ").unwrap(), b"0000");
        assert_eq!(unescape(b"a}\x03b").unwrap(), b"a#b");
        assert!(unescape(b"*!").is_err());
        assert!(unescape(b"ab}").is_err());
    }

    #[test]
    fn parses_stop_replies() {
        assert_eq!(parse_stop(b"T05thread:01;").unwrap(), Stop::Signal(5));
        assert_eq!(parse_stop(b"S02").unwrap(), Stop::Signal(2));
        assert_eq!(parse_stop(b"W00").unwrap(), Stop::Exited(0));
        assert_eq!(parse_stop(b"W01").unwrap(), Stop::Exited(1));
        assert_eq!(parse_stop(b"X09").unwrap(), Stop::Killed(9));
        assert!(parse_stop(b"OK").is_err());
        assert!(parse_stop(b"W").is_err());
    }

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(to_hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(from_hex(b"00ab10").unwrap(), vec![0, 0xab, 0x10]);
        assert!(from_hex(b"abc").is_err());
        assert!(from_hex(b"zz").is_err());
    }

    #[test]
    fn a_session_no_ack_breakpoint_memory_and_stops() {
        let fake = Fake::new(&[
            b"+$PacketSize=1000;QStartNoAckMode+#07",
            b"+$OK#9a",
            b"$OK#9a",
            b"$T05thread:01;#07",
            b"$78563412#a4",
            b"$OK#9a",
            b"$T02thread:01;#04",
            b"$W00#b7",
        ]);
        let mut c = Client::new(fake);
        assert!(c.start_no_ack(T).unwrap());
        c.hw_breakpoint(0x400, true, T).unwrap();
        c.resume().unwrap();
        assert_eq!(
            c.wait_stop(Instant::now() + T).unwrap(),
            Some(Stop::Signal(5))
        );
        assert_eq!(c.read_u32(0x2000_0000, T).unwrap(), 0x1234_5678);
        c.write_u32(0x2000_0004, 0xdead_beef, T).unwrap();
        assert_eq!(c.interrupt(T).unwrap(), Stop::Signal(2));
        c.resume().unwrap();
        assert_eq!(
            c.wait_stop(Instant::now() + T).unwrap(),
            Some(Stop::Exited(0))
        );
        let w = String::from_utf8_lossy(&c.stream().written).into_owned();
        // Replies before no-ack mode are acknowledged ('+'), later ones not.
        assert!(w.starts_with("$qSupported:swbreak+;hwbreak+#"), "{w}");
        assert!(w.contains("+$QStartNoAckMode#b0+$Z1,400,2#"), "{w}");
        assert!(w.contains("$m20000000,4#4f"), "{w}");
        assert!(w.contains("$M20000004,4:efbeadde#"), "{w}");
        assert!(w.contains('\x03'), "{w}");
        assert_eq!(w.matches("#b0+").count(), 1, "{w}");
        assert_eq!(w.matches('+').count(), 4, "{w}");
    }

    #[test]
    fn stays_in_ack_mode_when_the_stub_does_not_offer_no_ack() {
        let mut c = Client::new(Fake::new(&[b"+$PacketSize=1000#f1", b"+$OK#9a"]));
        assert!(!c.start_no_ack(T).unwrap());
        c.write_u32(0, 1, T).unwrap();
        let w = String::from_utf8_lossy(&c.stream().written).into_owned();
        assert!(!w.contains("QStartNoAckMode"), "{w}");
        // Both replies acknowledged: two '+' of our own after the two
        // in the qSupported feature list.
        assert!(w.ends_with('+'), "{w}");
        assert_eq!(w.matches('+').count(), 4, "{w}");
    }

    #[test]
    fn a_running_target_is_not_an_error_and_bad_checksums_are() {
        let mut c = Client::new(Fake::new(&[]));
        c.resume().unwrap();
        assert_eq!(
            c.wait_stop(Instant::now() + Duration::from_millis(5))
                .unwrap(),
            None
        );
        let mut c = Client::new(Fake::new(&[b"$OK#00"]));
        assert!(matches!(c.request(b"?", T), Err(RspError::Protocol(_))));
        let mut c = Client::new(Fake::new(&[b"$E01#a6"]));
        assert!(c.read_memory(0, 4, T).is_err());
    }
}
