//! One SCSI command on the session: the command PDU with its immediate
//! and unsolicited data, then R2Ts answered with Data-Out, Data-Ins placed
//! in the READ's buffer, and the status.

use super::{ReadSink, Session, Transfer, sn_lt};
use crate::iscsi::IscsiError;
use crate::iscsi::pdu::{BHS_LEN, DataOut, RESERVED_TAG, ScsiCommand, TargetPdu};
use crate::iscsi::scsi::{self, Sense};

/// Retries of a command that ended in UNIT ATTENTION (e.g. after a reset).
const UNIT_ATTENTION_RETRIES: usize = 3;

impl Session {
    /// Runs one SCSI command, retrying after UNIT ATTENTION. A failure other
    /// than a SCSI status leaves the session unusable.
    pub(super) async fn command(
        &mut self,
        what: &str,
        cdb: [u8; 16],
        transfer: Transfer<'_>,
    ) -> Result<Vec<u8>, IscsiError> {
        self.check_usable()?;
        let mut attempt = 0;
        loop {
            let result = self.execute(what, cdb, &transfer).await;
            match &result {
                Err(IscsiError::Scsi {
                    sense: Some(Sense { key, .. }),
                    ..
                }) if *key == scsi::SENSE_KEY_UNIT_ATTENTION
                    && attempt < UNIT_ATTENTION_RETRIES =>
                {
                    attempt += 1;
                    continue;
                }
                Err(IscsiError::Scsi { .. }) | Ok(_) => {}
                Err(e) => self.broken = Some(e.to_string()),
            }
            return result;
        }
    }

    async fn execute(
        &mut self,
        what: &str,
        cdb: [u8; 16],
        transfer: &Transfer<'_>,
    ) -> Result<Vec<u8>, IscsiError> {
        // Wait for the target to open its command window (MaxCmdSN).
        while sn_lt(self.max_cmd_sn, self.cmd_sn) {
            if let Some(other) = self.recv_one(what).await? {
                return Err(self.unexpected(what, &other));
            }
        }
        let (read, write, data, expected) = match *transfer {
            Transfer::None => (false, false, &[][..], 0),
            Transfer::Read(len) => (true, false, &[][..], len),
            Transfer::Write(data) => (false, true, data, data.len() as u32),
        };
        let p = self.params;
        let total = data.len();
        let (first_burst, segment) = (p.first_burst as usize, p.max_send_segment as usize);
        let immediate = if p.immediate_data {
            total.min(first_burst).min(segment)
        } else {
            0
        };
        let unsolicited = if p.initial_r2t {
            immediate
        } else {
            total.min(first_burst)
        };
        let itt = self.take_itt();
        let command = ScsiCommand {
            read,
            write,
            final_pdu: unsolicited == immediate,
            lun: self.lun_field,
            itt,
            expected_len: expected,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb,
        };
        let bytes = command
            .encode(&data[..immediate])
            .map_err(|e| self.protocol(what, e.to_string()))?;
        self.send(what, &bytes).await?;
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        if unsolicited > immediate {
            self.data_out(what, itt, RESERVED_TAG, data, immediate..unsolicited)
                .await?;
        }
        if read {
            self.sink = Some(ReadSink {
                itt,
                buffer: vec![0u8; expected as usize],
            });
        }
        let received = self.await_reply(what, itt, read, data).await;
        let mut buffer = self.sink.take().map_or_else(Vec::new, |s| s.buffer);
        buffer.truncate(received?);
        Ok(buffer)
    }

    /// Takes the target's R2Ts and Data-Ins until the command's status;
    /// returns how many bytes were read into the sink.
    async fn await_reply(
        &mut self,
        what: &str,
        itt: u32,
        read: bool,
        data: &[u8],
    ) -> Result<usize, IscsiError> {
        let total = data.len();
        let (mut received, mut next_data_sn) = (0usize, 0u32);
        loop {
            match self.recv(what).await? {
                TargetPdu::R2t(r2t) if r2t.itt == itt && !read => {
                    let start = r2t.offset as usize;
                    let end = start.saturating_add(r2t.desired_len as usize);
                    if r2t.desired_len == 0 || end > total {
                        let detail =
                            format!("R2T for bytes {start}..{end} of a {total}-byte write");
                        return Err(self.protocol(what, detail));
                    }
                    self.data_out(what, itt, r2t.ttt, data, start..end).await?;
                }
                TargetPdu::DataIn(d) if d.itt == itt && read => {
                    let start = d.offset as usize;
                    let end = start.saturating_add(d.len);
                    let size = self.sink.as_ref().map_or(0, |s| s.buffer.len());
                    if d.data_sn != next_data_sn || start != received || end > size {
                        let detail = format!(
                            "Data-In #{} for bytes {start}..{end} after {received} of {size} bytes",
                            d.data_sn,
                        );
                        return Err(self.protocol(what, detail));
                    }
                    // An empty `data` with a length was placed by recv_pdu.
                    if let (Some(sink), false) = (self.sink.as_mut(), d.data.is_empty()) {
                        sink.buffer[start..end].copy_from_slice(&d.data);
                    }
                    received = end;
                    next_data_sn = next_data_sn.wrapping_add(1);
                    if let Some(status) = d.status {
                        self.check_status(what, status, &[])?;
                        return Ok(received);
                    }
                }
                TargetPdu::Response(r) if r.itt == itt => {
                    if r.response != 0 {
                        let detail = format!("target failure (iSCSI response {:#04x})", r.response);
                        return Err(self.protocol(what, detail));
                    }
                    self.check_status(what, r.status, &r.data)?;
                    return Ok(received);
                }
                other => return Err(self.unexpected(what, &other)),
            }
        }
    }

    fn check_status(&self, what: &str, status: u8, data: &[u8]) -> Result<(), IscsiError> {
        if status == scsi::STATUS_GOOD {
            return Ok(());
        }
        Err(IscsiError::Scsi {
            at: self.at(what),
            lun: self.lun,
            status,
            sense: Sense::from_response_data(data),
        })
    }

    /// Sends `data[range]` as one sequence of Data-Out PDUs, each within the
    /// target's MaxRecvDataSegmentLength, the last with the F bit.
    async fn data_out(
        &mut self,
        what: &str,
        itt: u32,
        ttt: u32,
        data: &[u8],
        range: std::ops::Range<usize>,
    ) -> Result<(), IscsiError> {
        let segment = (self.params.max_send_segment as usize).max(1);
        let mut burst = Vec::with_capacity(range.len() + range.len().div_ceil(segment) * BHS_LEN);
        let (mut offset, mut data_sn) = (range.start, 0u32);
        while offset < range.end {
            let len = segment.min(range.end - offset);
            let header = DataOut {
                final_pdu: offset + len == range.end,
                lun: self.lun_field,
                itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                offset: offset as u32,
            };
            let pdu = header
                .encode(&data[offset..offset + len])
                .map_err(|e| self.protocol(what, e.to_string()))?;
            burst.extend_from_slice(&pdu);
            offset += len;
            data_sn = data_sn.wrapping_add(1);
        }
        self.send(what, &burst).await
    }
}
