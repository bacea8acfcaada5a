"""Everything that speaks FIX: sessions, codecs, the CLI and the venue simulator."""
