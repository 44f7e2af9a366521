"""Reading captures as a stream: classic pcap and pcapng, plain or compressed, from a file or stdin.

CONTRACT (implemented by the capture reader work; the rest of the package relies on it):

    reader = CaptureReader(path_or_dash, supported_linktypes=frozenset({...}))
    for ts, linktype, frame in reader:      # ts: float epoch seconds, linktype: int DLT, frame: bytes
        ...
    reader.problems  -> list[InputProblem]   # filled as reading goes; iteration ends quietly on a fatal one
    reader.offset    -> int                  # byte offset (in the decompressed stream) of the next record
    reader.packets   -> int                  # records yielded so far
    reader.size      -> int | None           # total bytes of the (compressed) file, for progress; None for stdin
    reader.bytes_read-> int                  # bytes consumed from the underlying (compressed) file so far
    reader.first_timestamp() -> float | None # peeks the first record's time without consuming (for ordering files)
"""
