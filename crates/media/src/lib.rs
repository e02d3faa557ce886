//! `media`: RTP/RTCP, the relay engine, G.711 and RFC 4733 DTMF.
