"""The sections of a stack's typed configuration, one module each: its frozen dataclass, the
formats its keys take, and `read_<section>`, which reads its keys from a `Reader`; `formats`
holds the formats keys of several sections share."""
