use std::{fmt::Debug, io, mem};

use monoio::{
    buf::{IoBuf, IoBufMut},
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt},
};

// coregate's patch (see ../README.adoc): the buffers no longer take 2 × 16 KiB for the life of
// every stream. The read buffer is 4 KiB, 16 KiB after a receive that filled it, and 4 KiB again
// after one that brought little; the write buffer exists only while it holds bytes not yet
// sent. Neither is zero-filled.

/// The largest buffer: a whole TLS record (16 KiB of plaintext) in one receive or send.
const BUFFER_SIZE: usize = 16 * 1024;
/// The read buffer's size until a receive fills it: a request head's records fit.
const READ_BUFFER_SMALL: usize = 4 * 1024;

/// Bytes `read..len` are pending; `len..capacity` is room for more. The vector's capacity is
/// fixed at creation and its length marks how much of it is initialized, so creating one
/// writes nothing.
struct Buffer {
    read: usize,
    buf: Vec<u8>,
}

impl Default for Buffer {
    fn default() -> Self {
        Self::new(BUFFER_SIZE)
    }
}

impl Buffer {
    fn new(size: usize) -> Self {
        Self {
            read: 0,
            buf: Vec::with_capacity(size),
        }
    }

    /// No storage at all (a write buffer with nothing to send).
    const fn none() -> Self {
        Self {
            read: 0,
            buf: Vec::new(),
        }
    }

    fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn len(&self) -> usize {
        self.buf.len() - self.read
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn available(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    fn is_full(&self) -> bool {
        self.available() == 0
    }

    fn advance(&mut self, n: usize) {
        assert!(self.read + n <= self.buf.len());
        self.read += n;
        if self.read == self.buf.len() {
            self.read = 0;
            self.buf.clear();
        }
    }
}

unsafe impl monoio::buf::IoBuf for Buffer {
    fn read_ptr(&self) -> *const u8 {
        unsafe { self.buf.as_ptr().add(self.read) }
    }

    fn bytes_init(&self) -> usize {
        self.buf.len() - self.read
    }
}

unsafe impl monoio::buf::IoBufMut for Buffer {
    fn write_ptr(&mut self) -> *mut u8 {
        unsafe { self.buf.as_mut_ptr().add(self.buf.len()) }
    }

    fn bytes_total(&mut self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        // `pos` more bytes after the initialized ones were written (by the kernel or a copy).
        self.buf.set_len(self.buf.len() + pos);
    }
}

pub struct SafeRead {
    // the option is only meant for temporary take, it always should be some
    buffer: Option<Buffer>,
    status: ReadStatus,
    /// The buffer size the next receive gets (coregate's patch): a whole record's after a
    /// receive that filled the buffer, the small size again after one that brought little.
    next_size: usize,
}

impl Debug for SafeRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeRead")
            .field("status", &self.status)
            .finish()
    }
}

#[derive(Debug)]
enum ReadStatus {
    Eof,
    Err(io::Error),
    Ok,
}

impl Default for SafeRead {
    fn default() -> Self {
        Self {
            buffer: Some(Buffer::new(READ_BUFFER_SMALL)),
            status: ReadStatus::Ok,
            next_size: READ_BUFFER_SMALL,
        }
    }
}

impl SafeRead {
    /// Create a new SafeRead with given buffer size.
    pub fn new(buffer_size: usize) -> Self {
        Self {
            buffer: Some(Buffer::new(buffer_size)),
            status: ReadStatus::Ok,
            next_size: buffer_size,
        }
    }

    /// `do_io` do async read from io to inner buffer.
    /// # Handle return value
    /// _: the read result.
    pub async fn do_io<IO: AsyncReadRent>(&mut self, mut io: IO) -> io::Result<usize> {
        // if there are some data inside the buffer, just return.
        let buffer = self.buffer.as_ref().expect("buffer ref expected");
        if !buffer.is_empty() {
            return Ok(buffer.len());
        }

        // The buffer is empty here: resize it if the last receive said so (coregate's patch).
        if buffer.capacity() != self.next_size {
            self.buffer = Some(Buffer::new(self.next_size));
        }

        // read from raw io
        // # Safety
        // We have already checked it is not None.
        let mut buffer = unsafe { self.buffer.take().unwrap_unchecked() };
        let room = buffer.bytes_total();
        let (result, buf) = io.read(buffer).await;
        self.buffer = Some(buf);
        match result {
            Ok(0) => {
                self.status = ReadStatus::Eof;
                result
            }
            Ok(n) => {
                if n == room {
                    self.next_size = BUFFER_SIZE;
                } else if n < READ_BUFFER_SMALL / 2 {
                    self.next_size = READ_BUFFER_SMALL;
                }
                self.status = ReadStatus::Ok;
                result
            }
            Err(e) => {
                let rerr = e.kind().into();
                self.status = ReadStatus::Err(e);
                Err(rerr)
            }
        }
    }
}

impl io::Read for SafeRead {
    /// `read` from buffer.
    /// # Handle return value
    /// 1. Err(WouldBlock): the buffer is empty, call do_io to fetch more.
    /// 2. _: handle it.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // if buffer is empty, return WoundBlock.
        let buffer = self.buffer.as_mut().expect("buffer mut expected");
        if buffer.is_empty() {
            return match mem::replace(&mut self.status, ReadStatus::Ok) {
                ReadStatus::Eof => Ok(0),
                ReadStatus::Err(e) => Err(e),
                ReadStatus::Ok => Err(io::ErrorKind::WouldBlock.into()),
            };
        }

        // now buffer is not empty. copy it.
        let to_copy = buffer.len().min(buf.len());
        unsafe { std::ptr::copy_nonoverlapping(buffer.read_ptr(), buf.as_mut_ptr(), to_copy) };
        buffer.advance(to_copy);

        Ok(to_copy)
    }
}

pub struct SafeWrite {
    // the option is only meant for temporary take, it always should be some
    buffer: Option<Buffer>,
    status: WriteStatus,
}

impl Debug for SafeWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeWrite")
            .field("status", &self.status)
            .finish()
    }
}

#[derive(Debug)]
enum WriteStatus {
    Err(io::Error),
    Ok,
}

impl Default for SafeWrite {
    fn default() -> Self {
        Self {
            // Made at the first write and dropped once sent (coregate's patch).
            buffer: Some(Buffer::none()),
            status: WriteStatus::Ok,
        }
    }
}

impl SafeWrite {
    /// Create a new SafeWrite with given buffer size.
    pub fn new(buffer_size: usize) -> Self {
        Self {
            buffer: Some(Buffer::new(buffer_size)),
            status: WriteStatus::Ok,
        }
    }

    /// `do_io` do async write from inner buffer to io.
    /// # Handle return value
    /// _: the write_all result(note: the data may have been written even when error).
    pub async fn do_io<IO: AsyncWriteRent>(&mut self, mut io: IO) -> io::Result<usize> {
        // if the buffer is empty, just return.
        let buffer = self.buffer.as_ref().expect("buffer ref expected");
        if buffer.is_empty() {
            return Ok(0);
        }

        // buffer is not empty now. write it.
        // # Safety
        // We have already checked it is not None.
        let buffer = unsafe { self.buffer.take().unwrap_unchecked() };
        let (result, buffer) = io.write_all(buffer).await;
        self.buffer = Some(buffer);
        match result {
            Ok(written_len) => {
                let buffer = unsafe { self.buffer.as_mut().unwrap_unchecked() };
                buffer.advance(written_len);
                // All sent: an idle stream holds no write buffer (coregate's patch).
                if buffer.is_empty() {
                    *buffer = Buffer::none();
                }
                Ok(written_len)
            }
            Err(e) => {
                let rerr = e.kind().into();
                self.status = WriteStatus::Err(e);
                Err(rerr)
            }
        }
    }
}

impl io::Write for SafeWrite {
    /// `write` to buffer.
    /// # Handle return value
    /// 1. Err(WouldBlock): the buffer is full, call do_io to flush it.
    /// 2. _: handle it.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // if there is too much data inside the buffer, return WoundBlock
        let buffer = self.buffer.as_mut().expect("buffer mut expected");
        if buffer.capacity() == 0 {
            *buffer = Buffer::default(); // coregate's patch: made when there is something to send
        }
        match mem::replace(&mut self.status, WriteStatus::Ok) {
            WriteStatus::Err(e) => return Err(e),
            WriteStatus::Ok if buffer.is_full() => return Err(io::ErrorKind::WouldBlock.into()),
            _ => (),
        }

        // there is space inside the buffer, copy to it.
        let to_copy = buf.len().min(buffer.available());
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), buffer.write_ptr(), to_copy) };
        unsafe { buffer.set_init(to_copy) };
        Ok(to_copy)
    }

    /// `flush` to buffer.
    /// # Handle return value
    /// 1. Err(WouldBlock): the buffer is full, call do_io to flush it.
    /// 2. _: handle it.
    fn flush(&mut self) -> io::Result<()> {
        let buffer = self.buffer.as_mut().expect("buffer mut expected");
        match mem::replace(&mut self.status, WriteStatus::Ok) {
            WriteStatus::Err(e) => Err(e),
            WriteStatus::Ok if !buffer.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(()),
        }
    }
}
