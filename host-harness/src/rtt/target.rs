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
