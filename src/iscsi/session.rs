//! The tokio side: one TCP connection, the login, SCSI commands one at a
//! time ([`command`] runs one), and the logout. Every network wait is
//! bounded by the timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::negotiate::{self, Negotiated, OUR_MAX_RECV_SEGMENT};
use super::pdu::{
    self, BHS_LEN, LoginRequest, LoginResponse, LogoutRequest, NopOut, RESERVED_TAG,
    STAGE_FULL_FEATURE, STAGE_OPERATIONAL, STAGE_SECURITY, TargetPdu,
};
use super::scsi;
use super::{Context, IscsiError, LoginOptions, Portal};

mod command;

/// The most one READ(16)/WRITE(16) moves; larger requests are split.
const MAX_COMMAND_BYTES: usize = 16 << 20;
/// Login exchanges allowed before giving up on a target that never moves on.
const MAX_LOGIN_EXCHANGES: usize = 16;
/// The most login text accepted across Login Responses with the C bit.
const MAX_LOGIN_TEXT: usize = 64 << 10;
const CID: u16 = 0;
/// Small PDUs (headers, responses) come through this buffer; a data segment
/// at least this big bypasses it (tokio's BufReader does so for reads
/// larger than its buffer when it is empty).
const READ_BUFFER: usize = 64 << 10;

/// Where a READ's Data-In segments go: read from the socket straight into
/// the command's buffer, not through a Vec per PDU.
struct ReadSink {
    itt: u32,
    buffer: Vec<u8>,
}

/// A logged-in iSCSI session with one LUN of one target.
pub struct Session {
    /// Buffered for reading: headers and small PDUs come in few syscalls.
    stream: BufReader<TcpStream>,
    /// The READ in progress, if any.
    sink: Option<ReadSink>,
    portal: SocketAddr,
    target: String,
    lun: u64,
    lun_field: [u8; 8],
    timeout: Duration,
    params: Negotiated,
    tsih: u16,
    cmd_sn: u32,
    exp_cmd_sn: u32,
    max_cmd_sn: u32,
    exp_stat_sn: u32,
    next_itt: u32,
    capacity: Option<(u64, u32)>,
    /// Set when a transport or protocol failure left the session unusable.
    broken: Option<String>,
}

enum Transfer<'a> {
    None,
    Read(u32),
    Write(&'a [u8]),
}

/// `a < b` in serial number arithmetic (RFC 1982, 32 bits).
fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

impl Session {
    /// Connects, logs in (security then operational negotiation) and enters
    /// the full feature phase.
    pub async fn login(portal: &Portal, options: &LoginOptions) -> Result<Session, IscsiError> {
        let lun_field = pdu::encode_lun(options.lun).ok_or_else(|| {
            IscsiError::Invalid(format!(
                "LUN {} cannot be addressed (above 16383)",
                options.lun
            ))
        })?;
        if options.target_name.is_empty() || options.initiator_name.is_empty() {
            return Err(IscsiError::Invalid(
                "the target and initiator names must not be empty".to_string(),
            ));
        }
        let at = Context {
            step: "TCP connect".to_string(),
            target: options.target_name.clone(),
            portal: portal.addr,
        };
        let stream =
            match tokio::time::timeout(options.timeout, TcpStream::connect(portal.addr)).await {
                Err(_) => {
                    return Err(IscsiError::Timeout {
                        at,
                        timeout: options.timeout,
                    });
                }
                Ok(Err(source)) => return Err(IscsiError::Io { at, source }),
                Ok(Ok(stream)) => stream,
            };
        stream
            .set_nodelay(true)
            .map_err(|source| IscsiError::Io { at, source })?;
        let mut session = Session {
            stream: BufReader::with_capacity(READ_BUFFER, stream),
            sink: None,
            portal: portal.addr,
            target: options.target_name.clone(),
            lun: options.lun,
            lun_field,
            timeout: options.timeout,
            params: Negotiated::default(),
            tsih: 0,
            cmd_sn: 1,
            exp_cmd_sn: 1,
            max_cmd_sn: 1,
            exp_stat_sn: 0,
            next_itt: 1,
            capacity: None,
            broken: None,
        };
        session.negotiate_login(options).await?;
        Ok(session)
    }

    /// The parameters in force, as negotiated at login.
    pub fn negotiated(&self) -> &Negotiated {
        &self.params
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn lun(&self) -> u64 {
        self.lun
    }

    pub fn portal(&self) -> SocketAddr {
        self.portal
    }

    /// The session handle the target assigned (TSIH).
    pub fn tsih(&self) -> u16 {
        self.tsih
    }

    /// READ CAPACITY(16), or (10) when the target refuses (16):
    /// (block count, block size in bytes).
    pub async fn capacity(&mut self) -> Result<(u64, u32), IscsiError> {
        let what = "READ CAPACITY(16)";
        let (blocks, size) = match self
            .command(what, scsi::read_capacity16(), Transfer::Read(32))
            .await
        {
            Ok(data) => scsi::parse_capacity16(&data).ok_or_else(|| {
                self.protocol(what, format!("{} bytes of capacity data", data.len()))
            })?,
            Err(e)
                if e.sense()
                    .is_some_and(|s| s.key == scsi::SENSE_KEY_ILLEGAL_REQUEST) =>
            {
                let what = "READ CAPACITY(10)";
                let data = self
                    .command(what, scsi::read_capacity10(), Transfer::Read(8))
                    .await?;
                scsi::parse_capacity10(&data).ok_or_else(|| {
                    self.protocol(what, format!("unusable capacity data {data:02x?}"))
                })?
            }
            Err(e) => return Err(e),
        };
        if size == 0 {
            return Err(self.protocol(what, "block size 0".to_string()));
        }
        self.capacity = Some((blocks, size));
        Ok((blocks, size))
    }

    async fn block_size(&mut self) -> Result<usize, IscsiError> {
        let size = match self.capacity {
            Some((_, size)) => size,
            None => self.capacity().await?.1,
        };
        Ok(size as usize)
    }

    /// WRITE(16) of whole blocks at `lba`; requests above 16 MiB are split
    /// into several commands.
    pub async fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), IscsiError> {
        let bs = self.block_size().await?;
        if !data.len().is_multiple_of(bs) {
            return Err(IscsiError::Invalid(format!(
                "a write of {} bytes is not a whole number of {bs}-byte blocks",
                data.len()
            )));
        }
        let per_command = (MAX_COMMAND_BYTES / bs).max(1) * bs;
        let mut at = lba;
        for chunk in data.chunks(per_command) {
            let blocks = (chunk.len() / bs) as u32;
            let what = format!("WRITE(16) of {blocks} blocks at LBA {at}");
            self.command(&what, scsi::write16(at, blocks), Transfer::Write(chunk))
                .await?;
            at = at.checked_add(u64::from(blocks)).ok_or_else(|| {
                IscsiError::Invalid(format!("LBA {lba} + {} blocks overflows", data.len() / bs))
            })?;
        }
        Ok(())
    }

    /// READ(16) of `blocks` blocks at `lba`.
    pub async fn read(&mut self, lba: u64, blocks: u32) -> Result<Vec<u8>, IscsiError> {
        let bs = self.block_size().await?;
        let per_command = (MAX_COMMAND_BYTES / bs).max(1) as u32;
        let mut out = Vec::new();
        let mut done = 0u32;
        while done < blocks {
            let count = per_command.min(blocks - done);
            let at = lba.checked_add(u64::from(done)).ok_or_else(|| {
                IscsiError::Invalid(format!("LBA {lba} + {blocks} blocks overflows"))
            })?;
            let what = format!("READ(16) of {count} blocks at LBA {at}");
            let want = count as usize * bs;
            let data = self
                .command(&what, scsi::read16(at, count), Transfer::Read(want as u32))
                .await?;
            if data.len() != want {
                let detail = format!("short read: {} of {want} bytes", data.len());
                return Err(self.protocol(&what, detail));
            }
            if count == blocks {
                // One command read it all: no copy.
                return Ok(data);
            }
            out.extend_from_slice(&data);
            done += count;
        }
        Ok(out)
    }

    /// SYNCHRONIZE CACHE(10) of the whole LUN: what was written is on the
    /// target's medium, not only in its cache.
    pub async fn synchronize_cache(&mut self) -> Result<(), IscsiError> {
        let what = "SYNCHRONIZE CACHE(10)";
        self.command(what, scsi::synchronize_cache10(), Transfer::None)
            .await
            .map(drop)
    }

    /// Logout (reason: close the session), then closes the connection.
    pub async fn logout(mut self) -> Result<(), IscsiError> {
        self.check_usable()?;
        let step = "logout";
        let itt = self.take_itt();
        let request = LogoutRequest {
            itt,
            cid: CID,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        let bytes = request
            .encode()
            .map_err(|e| self.protocol(step, e.to_string()))?;
        self.send(step, &bytes).await?;
        match self.recv(step).await? {
            TargetPdu::Logout(r) if r.itt == itt => {
                if r.response != 0 {
                    let detail = format!("the target refused to log out (response {})", r.response);
                    return Err(self.protocol(step, detail));
                }
            }
            other => return Err(self.unexpected(step, &other)),
        }
        // The target closes its side after the Logout Response; a failing
        // shutdown of ours changes nothing for a session that is over.
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    fn at(&self, step: &str) -> Context {
        Context {
            step: step.to_string(),
            target: self.target.clone(),
            portal: self.portal,
        }
    }

    fn protocol(&self, step: &str, detail: String) -> IscsiError {
        IscsiError::Protocol {
            at: self.at(step),
            detail,
        }
    }

    fn unexpected(&self, step: &str, pdu: &TargetPdu) -> IscsiError {
        self.protocol(step, format!("unexpected {} from the target", pdu.name()))
    }

    fn check_usable(&self) -> Result<(), IscsiError> {
        match &self.broken {
            Some(cause) => Err(IscsiError::Broken {
                target: self.target.clone(),
                portal: self.portal,
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn take_itt(&mut self) -> u32 {
        let itt = self.next_itt;
        self.next_itt = match self.next_itt.wrapping_add(1) {
            RESERVED_TAG => 0,
            next => next,
        };
        itt
    }

    async fn send(&mut self, step: &str, bytes: &[u8]) -> Result<(), IscsiError> {
        let (timeout, at) = (self.timeout, self.at(step));
        match tokio::time::timeout(timeout, self.stream.write_all(bytes)).await {
            Err(_) => Err(IscsiError::Timeout { at, timeout }),
            Ok(Err(source)) => Err(IscsiError::Io { at, source }),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads exactly `buf.len()` bytes, bounded by the timeout.
    async fn read_exact(&mut self, step: &str, buf: &mut [u8]) -> Result<(), IscsiError> {
        let (timeout, at) = (self.timeout, self.at(step));
        match tokio::time::timeout(timeout, self.stream.read_exact(buf)).await {
            Err(_) => Err(IscsiError::Timeout { at, timeout }),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(IscsiError::Closed { at })
            }
            Ok(Err(source)) => Err(IscsiError::Io { at, source }),
            Ok(Ok(_)) => Ok(()),
        }
    }

    async fn recv_pdu(&mut self, step: &str) -> Result<TargetPdu, IscsiError> {
        let limit = OUR_MAX_RECV_SEGMENT as usize;
        let mut bhs = [0u8; BHS_LEN];
        self.read_exact(step, &mut bhs).await?;
        let lengths = pdu::lengths(&bhs, limit).map_err(|e| self.protocol(step, e.to_string()))?;
        if let Some(range) = self.sink_range(&bhs, &lengths) {
            // Our READ's Data-In: the segment goes where it belongs.
            let mut sink = self.sink.take().expect("sink_range found a sink");
            let placed = self.read_exact(step, &mut sink.buffer[range]).await;
            self.sink = Some(sink);
            placed?;
            let mut padding = [0u8; 3];
            let pad = lengths.after_bhs() - lengths.data;
            self.read_exact(step, &mut padding[..pad]).await?;
            return pdu::decode_parts(&bhs, Vec::new())
                .map_err(|e| self.protocol(step, e.to_string()));
        }
        let mut pdu = bhs.to_vec();
        pdu.resize(BHS_LEN + lengths.after_bhs(), 0);
        self.read_exact(step, &mut pdu[BHS_LEN..]).await?;
        pdu::decode(&pdu, limit).map_err(|e| self.protocol(step, e.to_string()))
    }

    /// Where in the READ's buffer a Data-In with this header goes, if it is
    /// one for the READ in progress and fits; anything else is read whole
    /// and judged by the caller.
    fn sink_range(
        &self,
        bhs: &[u8; BHS_LEN],
        lengths: &pdu::Lengths,
    ) -> Option<std::ops::Range<usize>> {
        let sink = self.sink.as_ref()?;
        let itt = u32::from_be_bytes([bhs[16], bhs[17], bhs[18], bhs[19]]);
        let offset = u32::from_be_bytes([bhs[40], bhs[41], bhs[42], bhs[43]]) as usize;
        let end = offset.checked_add(lengths.data)?;
        let data_in = bhs[0] & 0x3f == pdu::OP_DATA_IN;
        (data_in
            && itt == sink.itt
            && lengths.ahs == 0
            && lengths.data > 0
            && end <= sink.buffer.len())
        .then_some(offset..end)
    }

    /// The next PDU, after sequence-number bookkeeping; `None` when it was a
    /// NOP-In or asynchronous message handled here.
    async fn recv_one(&mut self, step: &str) -> Result<Option<TargetPdu>, IscsiError> {
        let pdu = self.recv_pdu(step).await?;
        let sn = pdu.numbering();
        if pdu.carries_status() {
            self.exp_stat_sn = sn.stat_sn.wrapping_add(1);
        }
        // A window update is valid only when MaxCmdSN >= ExpCmdSN - 1.
        if !matches!(pdu, TargetPdu::Login(_))
            && !sn_lt(sn.max_cmd_sn.wrapping_add(1), sn.exp_cmd_sn)
        {
            if sn_lt(self.exp_cmd_sn, sn.exp_cmd_sn) {
                self.exp_cmd_sn = sn.exp_cmd_sn;
            }
            if sn_lt(self.max_cmd_sn, sn.max_cmd_sn) {
                self.max_cmd_sn = sn.max_cmd_sn;
            }
        }
        match pdu {
            TargetPdu::NopIn(ping) => {
                if ping.ttt != RESERVED_TAG {
                    let reply = NopOut {
                        lun: ping.lun,
                        ttt: ping.ttt,
                        cmd_sn: self.cmd_sn,
                        exp_stat_sn: self.exp_stat_sn,
                    };
                    let bytes = reply
                        .encode(&ping.data)
                        .map_err(|e| self.protocol(step, e.to_string()))?;
                    self.send(step, &bytes).await?;
                }
                Ok(None)
            }
            TargetPdu::Async(message) => match message.event {
                2 => Err(self.protocol(step, "the target is dropping the connection".to_string())),
                3 => Err(self.protocol(step, "the target is dropping the session".to_string())),
                // SCSI events, logout or renegotiation requests: nothing to
                // do mid-command; the caller logs out when done anyway.
                _ => Ok(None),
            },
            TargetPdu::Reject(reject) => Err(self.protocol(
                step,
                format!(
                    "the target rejected a PDU: {} (reason {:#04x})",
                    pdu::reject_reason(reject.reason),
                    reject.reason
                ),
            )),
            other => Ok(Some(other)),
        }
    }

    async fn recv(&mut self, step: &str) -> Result<TargetPdu, IscsiError> {
        loop {
            if let Some(pdu) = self.recv_one(step).await? {
                return Ok(pdu);
            }
        }
    }

    async fn negotiate_login(&mut self, options: &LoginOptions) -> Result<(), IscsiError> {
        let random: [u8; 3] = rand::random();
        let isid = [0x80, random[0], random[1], random[2], 0, 0];
        let itt = self.take_itt();
        let mut csg = STAGE_SECURITY;
        let mut text = pdu::encode_text(&negotiate::security_offer(
            &options.initiator_name,
            &options.target_name,
        ));
        let mut params = Negotiated::default();
        for _ in 0..MAX_LOGIN_EXCHANGES {
            let (step, nsg) = match csg {
                STAGE_SECURITY => ("login (security negotiation)", STAGE_OPERATIONAL),
                _ => ("login (operational negotiation)", STAGE_FULL_FEATURE),
            };
            let (response, pairs) = self
                .login_exchange(step, isid, itt, csg, nsg, &text)
                .await?;
            text = Vec::new();
            if csg == STAGE_SECURITY {
                negotiate::check_security(&pairs).map_err(|e| self.protocol(step, e))?;
            } else {
                let owed =
                    negotiate::absorb(&mut params, &pairs).map_err(|e| self.protocol(step, e))?;
                text = pdu::encode_text(&owed);
            }
            if !response.transit {
                continue;
            }
            match (csg, response.nsg) {
                (STAGE_SECURITY, STAGE_OPERATIONAL) => {
                    csg = STAGE_OPERATIONAL;
                    text = pdu::encode_text(&negotiate::operational_offer());
                }
                (STAGE_OPERATIONAL, STAGE_FULL_FEATURE) => {
                    self.params = params;
                    self.tsih = response.tsih;
                    self.cmd_sn = response.sn.exp_cmd_sn;
                    self.exp_cmd_sn = response.sn.exp_cmd_sn;
                    self.max_cmd_sn = response.sn.max_cmd_sn;
                    return Ok(());
                }
                (from, to) => {
                    let detail = format!("the target moved from login stage {from} to {to}");
                    return Err(self.protocol(step, detail));
                }
            }
        }
        let detail = format!("no full feature phase after {MAX_LOGIN_EXCHANGES} exchanges");
        Err(self.protocol("login", detail))
    }

    /// One Login Request and its Login Response, following C-bit
    /// continuations; returns the response and its text keys.
    async fn login_exchange(
        &mut self,
        step: &str,
        isid: [u8; 6],
        itt: u32,
        csg: u8,
        nsg: u8,
        text: &[u8],
    ) -> Result<(LoginResponse, Vec<(String, String)>), IscsiError> {
        let mut request = LoginRequest {
            transit: true,
            csg,
            nsg,
            isid,
            tsih: 0,
            itt,
            cid: CID,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        let mut out = text;
        let mut collected = Vec::new();
        loop {
            request.exp_stat_sn = self.exp_stat_sn;
            let bytes = request
                .encode(out)
                .map_err(|e| self.protocol(step, e.to_string()))?;
            self.send(step, &bytes).await?;
            let response = match self.recv(step).await? {
                TargetPdu::Login(response) => response,
                other => return Err(self.unexpected(step, &other)),
            };
            if response.status_class != 0 {
                return Err(IscsiError::LoginRefused {
                    target: self.target.clone(),
                    portal: self.portal,
                    class: response.status_class,
                    detail: response.status_detail,
                    meaning: negotiate::login_status_meaning(
                        response.status_class,
                        response.status_detail,
                    ),
                });
            }
            if response.itt != itt {
                let detail = format!("Login Response for task {:#x}, not {itt:#x}", response.itt);
                return Err(self.protocol(step, detail));
            }
            collected.extend_from_slice(&response.text);
            if collected.len() > MAX_LOGIN_TEXT {
                return Err(self.protocol(step, "endless login text".to_string()));
            }
            if !response.cont {
                let pairs =
                    pdu::parse_text(&collected).map_err(|e| self.protocol(step, e.to_string()))?;
                return Ok((response, pairs));
            }
            // More text follows: ask for it with an empty, non-transit request.
            request.transit = false;
            out = &[];
        }
    }
}
