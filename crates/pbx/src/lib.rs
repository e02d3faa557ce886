//! `pbx`: call control around the sans-IO `sip` stack: transports, registrar, B2BUA, CDRs.
