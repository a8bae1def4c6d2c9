//! QEMU as a debug probe: start `qemu-system-arm` halted with its gdbstub
//! on a loopback port, find RTT's control block in the ELF, and pump the
//! up-channel the way a probe does (halt, read, advance the read offset,
//! resume) until the guest exits.

use super::rsp::{Client, RspError, Stop};
use object::{Object, ObjectSymbol};
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-arm";

/// End of mps2-an386's code memory (4 MiB at 0).
pub const QEMU_CODE_END: u32 = 0x0040_0000;

/// Offsets in SEGGER's RTT control block: 16 bytes of id, two channel
/// counts, then up-channel 0 as {name, buffer, size, write, read, flags}.
const ID: &[u8] = b"SEGGER RTT";
const MAX_UP: u32 = 16;
const UP0_BUFFER: u32 = 28;
const UP0_SIZE: u32 = 32;
const UP0_WRITE: u32 = 36;
const UP0_READ: u32 = 40;
const UP0_FLAGS: u32 = 44;
/// Channel mode bits: 2 = block the writer while the buffer is full, so
/// nothing is dropped while the host is slow (defmt-rtt's default is 1,
/// overwrite/skip).
const MODE_MASK: u32 = 3;
const MODE_BLOCK_IF_FULL: u32 = 2;

/// How long a single gdbstub request may take.
const REQUEST: Duration = Duration::from_secs(5);
/// How long the guest runs between two reads of the buffer.
const SLICE: Duration = Duration::from_millis(3);

/// Addresses the reader needs from the ELF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbols {
    /// `_SEGGER_RTT`, the control block.
    pub rtt: u32,
    /// `main`, where RAM is initialised (Thumb bit cleared).
    pub main: u32,
}

/// Finds `_SEGGER_RTT` and `main` in an ELF image.
pub fn symbols(elf: &[u8]) -> Result<Symbols, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF file: {e}"))?;
    let find = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
            .ok_or_else(|| {
                format!("symbol `{name}` not found in the ELF (is it a defmt-rtt firmware?)")
            })
    };
    let to32 = |a: u64| u32::try_from(a).map_err(|_| format!("address {a:#x} is not 32-bit"));
    Ok(Symbols {
        rtt: to32(find("_SEGGER_RTT")?)?,
        main: to32(find("main")?)? & !1,
    })
}

/// A running QEMU, killed when dropped (on every exit path).
pub struct Qemu {
    child: Child,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    /// Starts QEMU halted (`-S`) with the firmware loaded and the gdbstub
    /// on a free loopback port; returns it and the port.
    pub fn start(elf: &Path) -> Result<(Self, u16), String> {
        Self::start_program(QEMU, elf)
    }

    /// [`Qemu::start`] with another QEMU binary (a path or a name on PATH).
    pub fn start_program(program: &str, elf: &Path) -> Result<(Self, u16), String> {
        // Ask the OS for a free port, then hand it to QEMU.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let child = Command::new(program)
            .args(["-machine", "mps2-an386", "-cpu", "cortex-m4"])
            // Deterministic virtual time: one instruction per ns, so
            // SysTick (25 MHz) ticks once per 40 instructions.
            .args(["-icount", "shift=0"])
            .args(["-nographic", "-monitor", "none", "-serial", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"])
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    format!(
                        "`{program}` is not installed: `apt-get install -y qemu-system-arm` \
                         (Debian/Ubuntu), or run `cargo xtask qemu`, which installs it"
                    )
                } else {
                    format!("could not start `{program}`: {e}")
                }
            })?;
        Ok((Self { child }, port))
    }

    /// Connects to the gdbstub, retrying while QEMU starts.
    pub fn connect(&mut self, port: u16, deadline: Instant) -> Result<Client<TcpStream>, String> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{QEMU} exited before its gdbstub was reachable ({status})"
                ));
            }
            match TcpStream::connect_timeout(
                &(Ipv4Addr::LOCALHOST, port).into(),
                Duration::from_millis(200),
            ) {
                Ok(s) => {
                    s.set_nodelay(true).map_err(|e| e.to_string())?;
                    s.set_read_timeout(Some(Duration::from_millis(1)))
                        .map_err(|e| e.to_string())?;
                    return Ok(Client::new(s));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "could not reach {QEMU}'s gdbstub on port {port}: {e}"
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// How the guest ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Semihosting exit with this status (0 success, 1 failure).
    Exited(u8),
    /// Killed by a signal.
    Killed(u8),
}

/// Runs the guest to `main`, switches RTT up-channel 0 to blocking, then
/// hands every chunk read from it to `on_bytes` until the guest exits or
/// `deadline` passes.
pub fn pump<S: io::Read + io::Write>(
    client: &mut Client<S>,
    syms: Symbols,
    deadline: Instant,
    mut on_bytes: impl FnMut(&[u8]),
) -> Result<Ending, String> {
    let e = |e: RspError| e.to_string();
    // Optional: QEMU 7.2's stub does not offer it.
    client.start_no_ack(REQUEST).map_err(e)?;
    // A hardware breakpoint: the code is in (emulated) flash.
    client.hw_breakpoint(syms.main, true, REQUEST).map_err(e)?;
    client.resume().map_err(e)?;
    match client.wait_stop(deadline).map_err(e)? {
        Some(Stop::Signal(_)) => {}
        Some(Stop::Exited(s)) => {
            return Err(format!("the guest exited ({s}) before reaching main"));
        }
        Some(Stop::Killed(s)) => {
            return Err(format!("the guest was killed (signal {s}) before main"));
        }
        None => return Err("the guest did not reach main in time".into()),
    }
    client.hw_breakpoint(syms.main, false, REQUEST).map_err(e)?;

    let cb = syms.rtt;
    let id = client.read_memory(cb, ID.len(), REQUEST).map_err(e)?;
    if id != ID {
        return Err(format!(
            "no RTT control block at {cb:#x} (found {:?})",
            String::from_utf8_lossy(&id)
        ));
    }
    if client.read_u32(cb + MAX_UP, REQUEST).map_err(e)? == 0 {
        return Err("the RTT control block has no up-channel".into());
    }
    let buffer = client.read_u32(cb + UP0_BUFFER, REQUEST).map_err(e)?;
    let size = client.read_u32(cb + UP0_SIZE, REQUEST).map_err(e)?;
    if size == 0 {
        return Err("RTT up-channel 0 has size 0".into());
    }
    let flags = client.read_u32(cb + UP0_FLAGS, REQUEST).map_err(e)?;
    client
        .write_u32(
            cb + UP0_FLAGS,
            (flags & !MODE_MASK) | MODE_BLOCK_IF_FULL,
            REQUEST,
        )
        .map_err(e)?;

    loop {
        // Halted here: read what the guest wrote and free the space.
        let write = client.read_u32(cb + UP0_WRITE, REQUEST).map_err(e)?;
        let read = client.read_u32(cb + UP0_READ, REQUEST).map_err(e)?;
        if write >= size || read >= size {
            return Err(format!(
                "corrupt RTT offsets write={write} read={read} size={size}"
            ));
        }
        if write != read {
            let mut bytes = Vec::new();
            if write > read {
                bytes.extend(
                    client
                        .read_memory(buffer + read, (write - read) as usize, REQUEST)
                        .map_err(e)?,
                );
            } else {
                bytes.extend(
                    client
                        .read_memory(buffer + read, (size - read) as usize, REQUEST)
                        .map_err(e)?,
                );
                if write > 0 {
                    bytes.extend(
                        client
                            .read_memory(buffer, write as usize, REQUEST)
                            .map_err(e)?,
                    );
                }
            }
            client.write_u32(cb + UP0_READ, write, REQUEST).map_err(e)?;
            on_bytes(&bytes);
        }
        if Instant::now() >= deadline {
            return Err("time limit reached while the guest was still running".into());
        }
        client.resume().map_err(e)?;
        let stop = match client.wait_stop(Instant::now() + SLICE).map_err(e)? {
            Some(stop) => stop,
            None => client.interrupt(REQUEST).map_err(e)?,
        };
        match stop {
            Stop::Signal(_) => {}
            Stop::Exited(s) => return Ok(Ending::Exited(s)),
            Stop::Killed(s) => return Ok(Ending::Killed(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtt::rsp;
    use std::io::{Read, Write};

    const BASE: u32 = 0x2000_0000;
    const RING: u32 = BASE + 0x100;
    const RING_SIZE: u32 = 64;

    /// A fake gdbstub over a fake guest whose RTT up-channel is a 64-byte
    /// ring in its RAM. Each `c` lets the guest write what fits (all of
    /// it, overwriting unread bytes, unless the channel is in blocking
    /// mode); it exits once everything was written and read.
    struct FakeTarget {
        ram: Vec<u8>,
        to_send: Vec<u8>,
        sent: usize,
        inbox: Vec<u8>,
        outbox: Vec<u8>,
        at_main: bool,
        running: bool,
    }

    impl FakeTarget {
        fn new(to_send: Vec<u8>) -> Self {
            let mut ram = vec![0u8; 0x200];
            ram[..10].copy_from_slice(b"SEGGER RTT");
            let mut put = |off: u32, v: u32| {
                ram[off as usize..off as usize + 4].copy_from_slice(&v.to_le_bytes());
            };
            put(MAX_UP, 1);
            put(UP0_BUFFER, RING);
            put(UP0_SIZE, RING_SIZE);
            put(UP0_FLAGS, 1);
            Self {
                ram,
                to_send,
                sent: 0,
                inbox: Vec::new(),
                outbox: Vec::new(),
                at_main: false,
                running: false,
            }
        }

        fn word(&self, off: u32) -> u32 {
            let o = off as usize;
            u32::from_le_bytes([
                self.ram[o],
                self.ram[o + 1],
                self.ram[o + 2],
                self.ram[o + 3],
            ])
        }

        fn guest_runs(&mut self) {
            let (mut write, read) = (self.word(UP0_WRITE), self.word(UP0_READ));
            let blocking = self.word(UP0_FLAGS) & MODE_MASK == MODE_BLOCK_IF_FULL;
            while self.sent < self.to_send.len() {
                let next = (write + 1) % RING_SIZE;
                if blocking && next == read {
                    break;
                }
                self.ram[(RING - BASE + write) as usize] = self.to_send[self.sent];
                self.sent += 1;
                write = next;
            }
            let o = UP0_WRITE as usize;
            self.ram[o..o + 4].copy_from_slice(&write.to_le_bytes());
        }

        fn reply(&mut self, payload: &[u8]) {
            self.outbox.extend(rsp::frame(payload));
        }

        fn handle(&mut self, p: &[u8]) {
            let text = String::from_utf8_lossy(p).into_owned();
            if text.starts_with("qSupported") {
                self.reply(b"PacketSize=1000");
            } else if text.starts_with('Z') || text.starts_with('z') {
                self.reply(b"OK");
            } else if text == "c" {
                if !self.at_main {
                    self.at_main = true;
                    self.reply(b"T05");
                } else {
                    self.guest_runs();
                    let done = self.sent == self.to_send.len()
                        && self.word(UP0_READ) == self.word(UP0_WRITE);
                    if done {
                        self.reply(b"W00");
                    } else {
                        self.running = true;
                    }
                }
            } else if let Some(rest) = text.strip_prefix('m') {
                let (a, n) = rest.split_once(',').unwrap();
                let a = (u32::from_str_radix(a, 16).unwrap() - BASE) as usize;
                let n = usize::from_str_radix(n, 16).unwrap();
                let hex = rsp::to_hex(&self.ram[a..a + n]);
                self.reply(hex.as_bytes());
            } else if let Some(rest) = text.strip_prefix('M') {
                let (head, hex) = rest.split_once(':').unwrap();
                let a = (u32::from_str_radix(head.split(',').next().unwrap(), 16).unwrap() - BASE)
                    as usize;
                let bytes = rsp::from_hex(hex.as_bytes()).unwrap();
                self.ram[a..a + bytes.len()].copy_from_slice(&bytes);
                self.reply(b"OK");
            } else {
                self.reply(b"");
            }
        }
    }

    impl Write for FakeTarget {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.inbox.extend_from_slice(data);
            loop {
                match self.inbox.first() {
                    Some(b'+') => {
                        self.inbox.remove(0);
                    }
                    Some(3) => {
                        self.inbox.remove(0);
                        if self.running {
                            self.running = false;
                            self.reply(b"T02");
                        }
                    }
                    Some(b'$') => {
                        let Some(hash) = self.inbox.iter().position(|&b| b == b'#') else {
                            break;
                        };
                        if self.inbox.len() < hash + 3 {
                            break;
                        }
                        let p = self.inbox[1..hash].to_vec();
                        self.inbox.drain(..hash + 3);
                        self.handle(&p);
                    }
                    _ => break,
                }
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Read for FakeTarget {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.outbox.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = out.len().min(self.outbox.len());
            out[..n].copy_from_slice(&self.outbox[..n]);
            self.outbox.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn pumps_a_stream_many_times_the_ring_through_its_wrap_around_losslessly() {
        // 1000 bytes through a 64-byte ring: ~16 wraps, every split of a
        // read across the end of the ring.
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut client = rsp::Client::new(FakeTarget::new(payload.clone()));
        let syms = Symbols {
            rtt: BASE,
            main: 0x400,
        };
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let ending = pump(&mut client, syms, deadline, |b| got.extend_from_slice(b)).unwrap();
        assert_eq!(ending, Ending::Exited(0));
        assert_eq!(got.len(), payload.len());
        assert!(got == payload, "the stream was reordered or corrupted");
        // The channel was switched to blocking mode.
        assert_eq!(
            client.stream().word(UP0_FLAGS) & MODE_MASK,
            MODE_BLOCK_IF_FULL
        );
    }

    #[test]
    fn a_target_without_a_control_block_is_refused() {
        let mut target = FakeTarget::new(vec![1, 2, 3]);
        target.ram[..10].copy_from_slice(b"NOT RTT   ");
        let mut client = rsp::Client::new(target);
        let syms = Symbols {
            rtt: BASE,
            main: 0x400,
        };
        let err = pump(
            &mut client,
            syms,
            Instant::now() + Duration::from_secs(5),
            |_| {},
        )
        .unwrap_err();
        assert!(err.contains("no RTT control block"), "{err}");
    }

    #[test]
    fn a_non_elf_is_refused_with_a_message() {
        let err = symbols(b"definitely not an ELF").unwrap_err();
        assert!(err.contains("not an ELF"), "{err}");
    }

    #[test]
    fn a_missing_qemu_says_how_to_install_it() {
        let err = Qemu::start_program("qemu-system-arm-that-does-not-exist", Path::new("x.elf"))
            .err()
            .unwrap();
        assert!(
            err.contains("is not installed") && err.contains("apt-get install -y qemu-system-arm"),
            "{err}"
        );
    }

    #[test]
    fn finds_symbols_in_the_test_binary_itself() {
        // This test executable is an ELF; it has no `_SEGGER_RTT`.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = symbols(&me).unwrap_err();
        assert!(err.contains("_SEGGER_RTT"), "{err}");
    }
}
