//! A real sensor as a sample source: X/Y readings over I2C through the
//! embedded-hal 1.0 traits, so any HAL's bus and delay plug in.
//!
//! The register layout is a parameter ([`XyRegisters`]); the preset is the
//! ST LIS3MDL magnetometer (a common breakout): poll the status register
//! until X and Y are ready, then read X and Y as little-endian `i16` with
//! one auto-incrementing burst, and scale to physical units.

use crate::SampleSource;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use gmm_core::Point;

/// Where an X/Y sensor keeps its readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct XyRegisters {
    /// 7-bit bus address.
    pub address: u8,
    /// `(register, value)` writes that configure continuous measurement.
    pub init: &'static [(u8, u8)],
    /// Status register polled before each reading.
    pub status: u8,
    /// Bits of `status` that must all be set for a new X/Y reading.
    pub ready_mask: u8,
    /// Register address (with any auto-increment flag) of X low byte;
    /// X high, Y low and Y high follow.
    pub data: u8,
    /// Physical units per count.
    pub scale: f32,
}

impl XyRegisters {
    /// ST LIS3MDL at address 0x1C: ultra-high-performance X/Y at 10 Hz,
    /// +-4 gauss, continuous conversion; readings in gauss
    /// (6842 counts per gauss).
    pub const LIS3MDL: Self = Self {
        address: 0x1C,
        init: &[(0x20, 0x70), (0x21, 0x00), (0x22, 0x00)],
        status: 0x27,
        ready_mask: 0x03,
        data: 0x28 | 0x80,
        scale: 1.0 / 6842.0,
    };
}

/// Why the sensor gave no reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SensorError<E> {
    /// The bus failed.
    I2c(E),
    /// No new reading after the allowed number of polls.
    NotReady {
        /// Polls made.
        polls: u32,
    },
}

/// An I2C X/Y sensor read as a [`SampleSource`].
#[derive(Debug)]
pub struct I2cXySource<I, D> {
    i2c: I,
    delay: D,
    regs: XyRegisters,
    poll_interval_us: u32,
    max_polls: u32,
}

impl<I: I2c, D: DelayNs> I2cXySource<I, D> {
    /// Configures the sensor (writes `regs.init`) and polls every
    /// `poll_interval_us` microseconds, at most `max_polls` times, per
    /// reading.
    ///
    /// # Errors
    /// [`SensorError::I2c`] when a configuration write fails.
    pub fn new(
        mut i2c: I,
        delay: D,
        regs: XyRegisters,
        poll_interval_us: u32,
        max_polls: u32,
    ) -> Result<Self, SensorError<I::Error>> {
        for &(reg, value) in regs.init {
            i2c.write(regs.address, &[reg, value])
                .map_err(SensorError::I2c)?;
        }
        Ok(Self {
            i2c,
            delay,
            regs,
            poll_interval_us,
            max_polls,
        })
    }

    /// Gives the bus and the delay back.
    pub fn release(self) -> (I, D) {
        (self.i2c, self.delay)
    }
}

impl<I: I2c, D: DelayNs> SampleSource for I2cXySource<I, D> {
    type Error = SensorError<I::Error>;

    fn next_point(&mut self) -> Result<Point, Self::Error> {
        let r = self.regs;
        let mut polls = 0;
        loop {
            if polls == self.max_polls {
                return Err(SensorError::NotReady { polls });
            }
            if polls > 0 {
                self.delay.delay_us(self.poll_interval_us);
            }
            polls += 1;
            let mut status = [0u8];
            self.i2c
                .write_read(r.address, &[r.status], &mut status)
                .map_err(SensorError::I2c)?;
            if status[0] & r.ready_mask == r.ready_mask {
                break;
            }
        }
        let mut raw = [0u8; 4];
        self.i2c
            .write_read(r.address, &[r.data], &mut raw)
            .map_err(SensorError::I2c)?;
        let x = i16::from_le_bytes([raw[0], raw[1]]);
        let y = i16::from_le_bytes([raw[2], raw[3]]);
        Ok([f32::from(x) * r.scale, f32::from(y) * r.scale])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as Delay};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as I2cT};

    const A: u8 = 0x1C;

    fn init() -> Vec<I2cT> {
        vec![
            I2cT::write(A, vec![0x20, 0x70]),
            I2cT::write(A, vec![0x21, 0x00]),
            I2cT::write(A, vec![0x22, 0x00]),
        ]
    }

    #[test]
    fn configures_then_reads_scaled_little_endian_xy() {
        let mut t = init();
        // Status 0x03: X and Y ready. X = 6842 (1 gauss), Y = -6842.
        t.push(I2cT::write_read(A, vec![0x27], vec![0x03]));
        let x = 6842i16.to_le_bytes();
        let y = (-6842i16).to_le_bytes();
        t.push(I2cT::write_read(
            A,
            vec![0xA8],
            vec![x[0], x[1], y[0], y[1]],
        ));
        let mut i2c = Mock::new(&t);
        let mut s =
            I2cXySource::new(i2c.clone(), NoopDelay::new(), XyRegisters::LIS3MDL, 1000, 5).unwrap();
        let p = s.next_point().unwrap();
        // 6842 * (1/6842) in f32: one rounding of the scale, one of the product.
        assert!((p[0] - 1.0).abs() <= 2.0 * f32::EPSILON, "{p:?}");
        assert!((p[1] + 1.0).abs() <= 2.0 * f32::EPSILON, "{p:?}");
        i2c.done();
    }

    #[test]
    fn polls_with_a_delay_until_ready_and_then_collects() {
        let mut t = init();
        // Only X ready, then nothing, then both.
        t.push(I2cT::write_read(A, vec![0x27], vec![0x01]));
        t.push(I2cT::write_read(A, vec![0x27], vec![0x00]));
        t.push(I2cT::write_read(A, vec![0x27], vec![0x0B]));
        t.push(I2cT::write_read(A, vec![0xA8], vec![1, 0, 0xFF, 0xFF]));
        t.push(I2cT::write_read(A, vec![0x27], vec![0x03]));
        t.push(I2cT::write_read(A, vec![0xA8], vec![0, 0x80, 0xFF, 0x7F]));
        let mut i2c = Mock::new(&t);
        let delays = [Delay::delay_us(250), Delay::delay_us(250)];
        let mut delay = CheckedDelay::new(&delays);
        let mut s =
            I2cXySource::new(i2c.clone(), delay.clone(), XyRegisters::LIS3MDL, 250, 3).unwrap();
        let mut buf: heapless::Vec<Point, 2> = heapless::Vec::new();
        crate::collect(&mut s, &mut buf).unwrap();
        let scale = XyRegisters::LIS3MDL.scale;
        assert_eq!(buf[0], [scale, -scale]);
        assert_eq!(buf[1], [-32768.0 * scale, 32767.0 * scale]);
        i2c.done();
        delay.done();
    }

    #[test]
    fn gives_up_after_max_polls() {
        let mut t = init();
        t.extend((0..3).map(|_| I2cT::write_read(A, vec![0x27], vec![0x02])));
        let mut i2c = Mock::new(&t);
        let mut s =
            I2cXySource::new(i2c.clone(), NoopDelay::new(), XyRegisters::LIS3MDL, 10, 3).unwrap();
        assert_eq!(s.next_point(), Err(SensorError::NotReady { polls: 3 }));
        i2c.done();
    }

    #[test]
    fn bus_errors_are_returned_not_panicked() {
        let t = vec![I2cT::write(A, vec![0x20, 0x70]).with_error(ErrorKind::Other)];
        let mut i2c = Mock::new(&t);
        let e = I2cXySource::new(i2c.clone(), NoopDelay::new(), XyRegisters::LIS3MDL, 10, 3);
        assert_eq!(e.err(), Some(SensorError::I2c(ErrorKind::Other)));
        i2c.done();

        let mut t = init();
        t.push(I2cT::write_read(A, vec![0x27], vec![0x03]));
        t.push(I2cT::write_read(A, vec![0xA8], vec![0; 4]).with_error(ErrorKind::Bus));
        let mut i2c = Mock::new(&t);
        let mut s =
            I2cXySource::new(i2c.clone(), NoopDelay::new(), XyRegisters::LIS3MDL, 10, 3).unwrap();
        assert_eq!(s.next_point(), Err(SensorError::I2c(ErrorKind::Bus)));
        i2c.done();
    }
}
