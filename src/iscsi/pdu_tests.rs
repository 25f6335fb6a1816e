use proptest::prelude::*;

use super::*;

const LIMIT: usize = 262_144;

/// A target PDU as tgtd would frame it: BHS with opcode/flags, the given
/// fields at their offsets, and a padded data segment.
fn target_pdu(opcode: u8, flags: u8, fields: &[(usize, u32)], data: &[u8]) -> Vec<u8> {
    let mut b = [0u8; BHS_LEN];
    b[0] = opcode;
    b[1] = flags;
    for &(at, v) in fields {
        put32(&mut b, at, v);
    }
    match frame(b, data) {
        Ok(pdu) => pdu,
        Err(e) => panic!("framing a test PDU: {e}"),
    }
}

#[test]
fn login_request_layout() {
    let req = LoginRequest {
        transit: true,
        csg: STAGE_OPERATIONAL,
        nsg: STAGE_FULL_FEATURE,
        isid: [0x80, 1, 2, 3, 0, 0],
        tsih: 0,
        itt: 0x11223344,
        cid: 7,
        cmd_sn: 5,
        exp_stat_sn: 9,
    };
    let bytes = req.encode(b"A=B\0").expect("encode");
    assert_eq!(bytes.len(), BHS_LEN + 4);
    assert_eq!(bytes[0], 0x43, "immediate Login Request");
    assert_eq!(bytes[1], 0x87, "T, CSG 1, NSG 3");
    assert_eq!(&bytes[5..8], &[0, 0, 4]);
    assert_eq!(&bytes[8..14], &[0x80, 1, 2, 3, 0, 0]);
    assert_eq!(be32(&bytes, 16), 0x11223344);
    assert_eq!(be16(&bytes, 20), 7);
    assert_eq!((be32(&bytes, 24), be32(&bytes, 28)), (5, 9));
    let not_transit = LoginRequest {
        transit: false,
        ..req
    };
    assert_eq!(
        not_transit.encode(&[]).expect("encode")[1],
        0x04,
        "NSG reserved"
    );
}

#[test]
fn scsi_command_and_data_out_layout() {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x8a;
    let cmd = ScsiCommand {
        read: false,
        write: true,
        final_pdu: false,
        lun: encode_lun(1).expect("lun"),
        itt: 3,
        expected_len: 4096,
        cmd_sn: 10,
        exp_stat_sn: 2,
        cdb,
    };
    let bytes = cmd.encode(&[0xaa; 5]).expect("encode");
    assert_eq!(bytes.len(), BHS_LEN + 8, "5 bytes padded to 8");
    assert_eq!(&bytes[BHS_LEN + 5..], &[0, 0, 0]);
    assert_eq!((bytes[0], bytes[1]), (0x01, 0x21), "W, simple task, no F");
    assert_eq!(&bytes[8..10], &[0, 1]);
    assert_eq!((be32(&bytes, 20), be32(&bytes, 24)), (4096, 10));
    assert_eq!(bytes[32], 0x8a);
    let read = ScsiCommand {
        read: true,
        write: false,
        final_pdu: true,
        ..cmd
    };
    assert_eq!(read.encode(&[]).expect("encode")[1], 0xc1);

    let out = DataOut {
        final_pdu: true,
        lun: [0; 8],
        itt: 3,
        ttt: 0x99,
        exp_stat_sn: 4,
        data_sn: 2,
        offset: 8192,
    };
    let bytes = out.encode(&[1; 512]).expect("encode");
    assert_eq!((bytes[0], bytes[1]), (0x05, 0x80));
    assert_eq!(&bytes[5..8], &[0, 2, 0]);
    assert_eq!(
        (be32(&bytes, 20), be32(&bytes, 36), be32(&bytes, 40)),
        (0x99, 2, 8192)
    );
    let logout = LogoutRequest {
        itt: 8,
        cid: 0,
        cmd_sn: 11,
        exp_stat_sn: 12,
    };
    let bytes = logout.encode().expect("encode");
    assert_eq!((bytes[0], bytes[1], bytes.len()), (0x46, 0x80, BHS_LEN));
}

#[test]
fn decodes_login_response_and_text() {
    let text = b"TargetPortalGroupTag=1\0AuthMethod=None\0";
    let mut pdu = target_pdu(0x23, 0x81, &[(16, 1), (24, 7), (28, 1), (32, 64)], text);
    pdu[36] = 0;
    pdu[14] = 0x12;
    match decode(&pdu, LIMIT) {
        Ok(TargetPdu::Login(r)) => {
            assert!(r.transit && !r.cont);
            assert_eq!((r.csg, r.nsg, r.tsih, r.itt), (0, 1, 0x1200, 1));
            assert_eq!((r.sn.stat_sn, r.sn.max_cmd_sn), (7, 64));
            let pairs = parse_text(&r.text).expect("text");
            assert_eq!(pairs[0], ("TargetPortalGroupTag".into(), "1".into()));
            assert_eq!(pairs[1], ("AuthMethod".into(), "None".into()));
        }
        other => panic!("expected a Login Response, got {other:?}"),
    }
}

#[test]
fn decodes_data_in_r2t_and_response() {
    let pdu = target_pdu(
        0x25,
        0x81,
        &[(16, 5), (36, 3), (40, 1024), (44, 0)],
        &[7; 6],
    );
    match decode(&pdu, LIMIT) {
        Ok(TargetPdu::DataIn(d)) => {
            assert_eq!((d.status, d.data_sn, d.offset), (Some(0), 3, 1024));
            assert_eq!((d.data, d.len), (vec![7; 6], 6));
        }
        other => panic!("expected Data-In, got {other:?}"),
    }
    // The header alone, its data placed elsewhere by the reader: the length stays known.
    match decode_parts(&pdu[..BHS_LEN], Vec::new()) {
        Ok(TargetPdu::DataIn(d)) => assert_eq!((d.data.len(), d.len, d.offset), (0, 6, 1024)),
        other => panic!("expected Data-In, got {other:?}"),
    }
    let pdu = target_pdu(
        0x31,
        0x80,
        &[(16, 5), (20, 0x77), (40, 65536), (44, 262144)],
        &[],
    );
    match decode(&pdu, LIMIT) {
        Ok(TargetPdu::R2t(r)) => {
            assert_eq!((r.ttt, r.offset, r.desired_len), (0x77, 65536, 262144));
            assert!(!TargetPdu::R2t(r).carries_status());
        }
        other => panic!("expected R2T, got {other:?}"),
    }
    let sense = [0, 4, 0x70, 0, 5, 0];
    let mut pdu = target_pdu(0x21, 0x82, &[(16, 5), (44, 512)], &sense);
    pdu[3] = 0x02;
    match decode(&pdu, LIMIT) {
        Ok(TargetPdu::Response(r)) => {
            assert_eq!((r.status, r.underflow, r.residual), (2, true, 512));
            assert_eq!(r.data, sense.to_vec());
        }
        other => panic!("expected SCSI Response, got {other:?}"),
    }
}

#[test]
fn ahs_is_skipped() {
    let mut pdu = target_pdu(0x26, 0x80, &[(16, 9)], &[]);
    pdu[4] = 2;
    pdu.extend_from_slice(&[0xee; 8]);
    assert!(matches!(decode(&pdu, LIMIT), Ok(TargetPdu::Logout(l)) if l.itt == 9));
}

#[test]
fn malformed_pdus_are_errors() {
    let pdu = target_pdu(0x25, 0x80, &[], &[1, 2, 3, 4, 5]);
    assert_eq!(
        decode(&pdu[..20], LIMIT),
        Err(PduError::Truncated {
            needed: 48,
            got: 20
        })
    );
    assert_eq!(
        decode(&pdu[..pdu.len() - 1], LIMIT),
        Err(PduError::LengthMismatch {
            expected: 56,
            got: 55
        })
    );
    assert_eq!(
        decode(&pdu, 4),
        Err(PduError::DataTooLong { len: 5, limit: 4 })
    );
    let unknown = target_pdu(0x3a, 0, &[], &[]);
    assert_eq!(decode(&unknown, LIMIT), Err(PduError::UnknownOpcode(0x3a)));
    // An initiator opcode is not something a target sends.
    let echo = target_pdu(0x01, 0, &[], &[]);
    assert_eq!(decode(&echo, LIMIT), Err(PduError::UnknownOpcode(0x01)));
}

#[test]
fn text_parsing() {
    assert_eq!(parse_text(b""), Ok(vec![]));
    assert_eq!(
        parse_text(b"A=1\0B=\0\0\0"),
        Ok(vec![("A".into(), "1".into()), ("B".into(), String::new())])
    );
    assert_eq!(parse_text(b"K=a=b"), Ok(vec![("K".into(), "a=b".into())]));
    assert!(parse_text(b"NoEquals\0").is_err());
    assert!(parse_text(b"=value\0").is_err());
    assert!(parse_text(&[b'K', b'=', 0xff, 0]).is_err());
    let long_key = format!("{}=1", "k".repeat(64));
    assert!(parse_text(long_key.as_bytes()).is_err());
    let pairs = [("InitiatorName", "iqn.x"), ("AuthMethod", "None")];
    assert_eq!(
        encode_text(&pairs),
        b"InitiatorName=iqn.x\0AuthMethod=None\0".to_vec()
    );
}

#[test]
fn lun_addressing() {
    assert_eq!(encode_lun(0), Some([0; 8]));
    assert_eq!(encode_lun(1), Some([0, 1, 0, 0, 0, 0, 0, 0]));
    assert_eq!(encode_lun(300), Some([0x41, 0x2c, 0, 0, 0, 0, 0, 0]));
    assert_eq!(encode_lun(16384), None);
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let result = decode(&bytes, 256);
        if bytes.len() < BHS_LEN {
            prop_assert!(result.is_err());
        }
        let _ = parse_text(&bytes);
    }

    #[test]
    fn framed_pdus_decode_whatever_the_header(
        mut bhs in proptest::collection::vec(any::<u8>(), BHS_LEN),
        data in proptest::collection::vec(any::<u8>(), 0..300),
        ahs_words in 0u8..4,
    ) {
        bhs[0] = [0x20, 0x21, 0x23, 0x25, 0x26, 0x31, 0x32, 0x3f][usize::from(bhs[0] % 8)];
        bhs[4] = ahs_words;
        let mut header = [0u8; BHS_LEN];
        header.copy_from_slice(&bhs);
        let mut pdu = frame(header, &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let len = data.len().to_be_bytes();
        pdu[5..8].copy_from_slice(&len[len.len() - 3..]);
        pdu.extend(std::iter::repeat_n(0u8, usize::from(ahs_words) * 4));
        pdu.extend_from_slice(&data);
        pdu.resize(BHS_LEN + usize::from(ahs_words) * 4 + pad4(data.len()), 0);
        prop_assert!(decode(&pdu, LIMIT).is_ok());
        // Every truncation is an error, never a panic.
        for cut in [0, 1, BHS_LEN - 1, BHS_LEN, pdu.len() - 1] {
            if cut < pdu.len() {
                prop_assert!(decode(&pdu[..cut], LIMIT).is_err());
            }
        }
    }
}
