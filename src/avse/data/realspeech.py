"""Import real recordings (fillets-ng dialogue, asterisk prompts, word games' voices, two adventure games' talkies, a user's folder) as 16 kHz wavs.

``import_speech(src, out)`` recognises what ``src`` holds by its layout:

- fillets-ng (Debian's ``fillets-ng-data`` + ``-cs`` / ``-nl``): acted game
  dialogue, ``sound/LEVEL/LANG/ID.ogg`` with the transcript of every line in
  ``script/LEVEL/dialogs_LANG.lua`` (``dialogId("ID", font, "English")`` then
  ``dialogStr("the line")``). The speaker is the character, named by the
  ``font`` its lines are printed in (``font_big``: the big fish, ``font_small``:
  the small fish, ``font_parrot``, ...), per language (other actors). The colour
  fonts (``font_white``, ``font_lightgrey``, ...) serve several minor characters;
  each is kept as one speaker all the same: merging voices can only make a
  speaker-disjoint split stricter, splitting one voice in two could break it.
- asterisk prompts (``asterisk-core-sounds-LANG-g722``, ``asterisk-prompt-*``):
  one voice per folder ``sounds/LANG_REGION_SEX_NAME/`` (or ``sounds/LANG/``
  for the prompt packages), no transcripts (maskers only).
- the voices of two word games, no transcripts (maskers only), one speaker per
  language folder: KLettres (``klettres-data``: letters and syllables,
  ``klettres/LANG/{alpha,syllab}/``) and KTuberling (``ktuberling-data``:
  words, ``ktuberling/sounds/LANG/``), Ogg, Opus or wav files. A file whose bytes another language
  folder already holds (Serbian is shipped four times) is imported once.
- Flight of the Amazon Queen (``flight-of-the-amazon-queen``, its talkie
  release): English running speech by a cast of actors, 11 kHz MP3 inside the
  game's ``queen.1c`` archive (a ``QTBL`` table of named entries), no
  transcripts (maskers only). Only lines whose name says who speaks are read:
  the hero's (``JOE*.SB`` and dialogue lines ``RRDDDDJn.SB``) are one speaker,
  the partners' dialogue lines (``RRDDDDPn.SB``) one speaker per room ``RR``
  (a room's partners may be several characters, merged as fillets-ng's colour
  fonts are); cut-scene lines, which mix voices, are skipped.
- Beneath a Steel Sky (``beneath-a-steel-sky``, its CD release): English
  running speech by a cast of actors, 8-bit 11 kHz PCM, RNC-packed,
  in the game's ``sky.dsk`` archive (indexed by ``sky.dnr``), no transcripts
  (maskers only, unless recognised). Nothing in the archive says who speaks a
  line, so all of them are one speaker label, ``sky`` (several voices merged,
  as fillets-ng's colour fonts are: its lines are never mixed with each other,
  and a speaker-disjoint split keeps them all on one side).
- anything else: a folder of recordings (wav/flac/ogg, searched recursively),
  the speaker being each file's parent folder and the transcript an optional
  same-name ``.txt`` beside it.

``OUT/wav/ID.wav`` (16 kHz mono PCM_16) and ``OUT/speech.json`` (written last:
its presence means the import is complete) listing every recording: id,
wavfile, speaker, language, transcript (or null), duration, nsamples, source,
and, when there is a transcript, phone and word timings from
:mod:`avse.data.align` in the form TTS utterances have (``[symbol, start_s,
end_s]``, ARPAbet or ``pau``, contiguous over the recording). Unusable files
(unreadable, too short, silent) are skipped and counted, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from avse import SAMPLE_RATE
from avse.data.metadata import safe_name
from avse.errors import AvseError, ConfigError, MediaError, MetadataError

LIST_NAME = "speech.json"
WAV_DIR = "wav"
WORK_DIR = ".import"  # per-item records, so that an interrupted import resumes
FORMAT = 1
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MIN_SECONDS = 0.4  # shorter recordings are skipped
PEAK_LIMIT = 0.99  # a decoded recording louder than full scale is scaled down to this peak

FILLETS = Path("usr/share/games/fillets-ng")
ASTERISK = Path("usr/share/asterisk/sounds")
GAME_SUFFIXES = (".ogg", ".opus", ".wav", ".flac")
# word game -> (its tree under a Debian root, where a language folder keeps its recordings)
WORD_GAMES = {"klettres": (Path("usr/share/klettres"), "*/*"), "ktuberling": (Path("usr/share/ktuberling/sounds"), "*")}
QUEEN = Path("usr/share/scummvm/flight-of-the-amazon-queen")
QUEEN_ARCHIVE = "queen.1c"
SKY = Path("usr/share/scummvm/beneath-a-steel-sky")
SKY_INDEX, SKY_DISK = "sky.dnr", "sky.dsk"
SKY_SPEECH = range(50000, 55380)  # the data files that hold spoken lines (50000 + 5,380 line numbers over the game's sections)
SKY_RATE = 11025  # its lines are 8-bit unsigned PCM at this rate
# hero: JOEnnnnn.SB or RRDDDDJn.SB; a dialogue partner: RRDDDDPn.SB (RR the room); anything else (cut scenes) is skipped
_QUEEN_LINE = re.compile(r"^(?:JOE\d{5}|(?P<room>[0-9A-F]{2})[0-9A-F]{4}(?P<who>[JP])[0-9A-Z])\.SB$")
_MULTI_VOICE_FONTS = frozenset({"both"})  # two characters at once: not one speaker


@dataclass(frozen=True)
class DialogLine:
    """One line of a fillets-ng ``dialogs_LANG.lua``: its id, font (speaker), English text and translation."""

    id: str
    font: str
    english: str
    text: str | None  # the line in the file's language; None when no dialogStr follows


@dataclass(frozen=True)
class SourceItem:
    """One recording to import: where it is and what is known about it."""

    id: str
    path: Path
    speaker: str
    language: str  # espeak-ng voice name of its language ("cs", "nl", "en-us", ...)
    transcript: str | None
    source: str  # path relative to the import's source folder
    extra: tuple[tuple[str, str], ...] = ()  # more fields for the list entry (e.g. the English text)
    span: tuple[int, int] | None = None  # (offset, size) of the recording's bytes inside ``path`` (an archive)
    sky: tuple[int, int, int, int] | None = None  # its sky.dnr entry, when ``path`` is Beneath a Steel Sky's sky.dsk


# ----------------------------------------------------------------------------- fillets-ng transcripts

_LUA_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>--[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>\.\.|[(),;=])
      | (?P<other>\S)
    )""",
    re.VERBOSE | re.DOTALL,
)
_LUA_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "\n": "\n"}


def _lua_string(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: _LUA_ESCAPES.get(m.group(1), m.group(1)), body, flags=re.DOTALL)


def _lua_tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for m in _LUA_TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        if kind == "comment":
            continue
        value = m.group(kind)
        out.append((kind, _lua_string(value) if kind == "string" else value))
    return out


def _lua_args(tokens: list[tuple[str, str]], i: int) -> tuple[list[str], int]:
    """The arguments of the call whose '(' is at ``tokens[i]`` (strings joined by '..'), and the index after ')'."""
    args: list[str] = []
    current: list[str] = []
    i += 1
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "punct" and value == ")":
            args.append("".join(current))
            return args, i + 1
        if kind == "punct" and value == ",":
            args.append("".join(current))
            current = []
        elif kind in ("string", "name"):
            current.append(value)
        i += 1
    raise ValueError("unclosed call")


def parse_dialogs_lua(text: str) -> list[DialogLine]:
    """The lines of a fillets-ng ``dialogs_LANG.lua``, in file order.

    Each ``dialogId("ID", font, "English")`` opens a line; the ``dialogStr("...")``
    after it (before the next ``dialogId``) is its text in the file's language.
    String escapes are decoded, adjacent strings joined by ``..`` concatenated,
    ``--`` comments ignored. A malformed call raises ValueError.
    """
    tokens = _lua_tokens(text)
    lines: list[DialogLine] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        is_call = kind == "name" and i + 1 < len(tokens) and tokens[i + 1] == ("punct", "(")
        if is_call and value == "dialogId":
            args, i = _lua_args(tokens, i + 1)
            if len(args) < 3:
                raise ValueError(f"dialogId with {len(args)} argument(s), expected 3")
            lines.append(DialogLine(args[0], args[1], args[2], None))
        elif is_call and value == "dialogStr":
            args, i = _lua_args(tokens, i + 1)
            if lines and lines[-1].text is None and args:
                last = lines[-1]
                lines[-1] = DialogLine(last.id, last.font, last.english, args[0])
        else:
            i += 1
    return lines


def fillets_speaker(font: str, language: str) -> str | None:
    """Speaker name of a fillets-ng line from its font; None for lines of no single speaker (no font, "font_both")."""
    name = font.removeprefix("font_").strip()
    if not name or name in _MULTI_VOICE_FONTS:
        return None
    return f"fillets-{language}-{name}"


# ----------------------------------------------------------------------------- what a source folder holds


def _fillets_root(src: Path) -> Path | None:
    for cand in (src / FILLETS, src):
        if (cand / "sound").is_dir() and (cand / "script").is_dir() and any((cand / "script").glob("*/dialogs_*.lua")):
            return cand
    return None


def _asterisk_root(src: Path) -> Path | None:
    for cand in (src / ASTERISK, src):
        if cand.is_dir() and cand.name == "sounds" and cand.parent.name == "asterisk":
            return cand
    return None


def _word_game_root(src: Path, game: str) -> Path | None:
    tree, files = WORD_GAMES[game]
    tail = tree.parts[2:]  # ("klettres",) or ("ktuberling", "sounds")
    for cand in (src / tree, src):
        if not cand.is_dir() or cand.parts[-len(tail):] != tail:
            continue
        if any(f.suffix.lower() in GAME_SUFFIXES for f in cand.glob(f"*/{files}")):
            return cand
    return None


def _wanted(lang: str, languages: tuple[str, ...] | None) -> bool:
    """Whether a recording in ``lang`` is asked for: every one when ``languages`` is None, else by full or base name."""
    return languages is None or lang in languages or lang.split("-")[0] in languages


def _safe_id(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return out or "item"


def fillets_items(root: Path, languages: tuple[str, ...] | None, skipped: dict[str, int]) -> list[SourceItem]:
    """The recorded lines of a fillets-ng tree ``root`` (holding sound/ and script/) in ``languages`` (None: every one)."""
    sound, script = root / "sound", root / "script"
    found = sorted({p.parent.name for p in sound.glob("*/*/*.ogg")} - {"en"}) if languages is None else list(languages)
    items: list[SourceItem] = []
    for lang in found:
        lines: dict[tuple[str, str], DialogLine] = {}
        anywhere: dict[str, DialogLine] = {}
        for lua in sorted(script.glob(f"*/dialogs_{lang}.lua")):
            try:
                parsed = parse_dialogs_lua(lua.read_text(encoding="utf-8", errors="replace"))
            except ValueError as err:
                raise MetadataError(lua, f"cannot parse: {err}") from None
            for line in parsed:
                lines[(lua.parent.name, line.id)] = line
                anywhere.setdefault(line.id, line)
        for ogg in sorted(sound.glob(f"*/{lang}/*.ogg")):
            level = ogg.parent.parent.name
            found_line = lines.get((level, ogg.stem)) or anywhere.get(ogg.stem)
            if found_line is None:
                skipped["no transcript entry"] = skipped.get("no transcript entry", 0) + 1
                continue
            line = found_line
            speaker = fillets_speaker(line.font, lang)
            text = line.text if line.text is not None else (line.english if lang == "en" else None)
            text = " ".join(text.split()) if text else None
            if speaker is None or not text:
                skipped["no single speaker or no text (effects)"] = skipped.get("no single speaker or no text (effects)", 0) + 1
                continue
            items.append(
                SourceItem(
                    id=_safe_id(f"fillets-{lang}-{level}-{ogg.stem}"),
                    path=ogg,
                    speaker=speaker,
                    language=lang,
                    transcript=text,
                    source=str(ogg.relative_to(root.parent if root.name == "fillets-ng" else root)),
                    extra=(("english", " ".join(line.english.split())),),
                )
            )
    if languages is not None and not items:
        raise ConfigError(f"{root}: no fillets-ng recordings in {', '.join(languages)} (found: {', '.join(sorted({p.parent.name for p in sound.glob('*/*/*.ogg')}))})")
    return items


def _asterisk_language(folder: str) -> str:
    parts = folder.split("_")
    lang = parts[0].lower()
    return f"en-{parts[1].lower()}" if lang == "en" and len(parts) > 1 and parts[1].lower() in ("us", "gb") else lang


def asterisk_items(root: Path, languages: tuple[str, ...] | None) -> list[SourceItem]:
    """The prompts of an asterisk ``sounds`` folder (one voice per LANG_REGION_SEX_NAME folder), untranscribed."""
    items = []
    for voice_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        lang = _asterisk_language(voice_dir.name)
        if not _wanted(lang, languages):
            continue
        name = voice_dir.name.split("_")[-1]
        for f in sorted(voice_dir.rglob("*")):
            if f.suffix.lower() not in (".g722", ".wav", ".gsm", ".ulaw", ".alaw") or "silence" in f.parts:
                continue
            rel = f.relative_to(voice_dir).with_suffix("")
            items.append(
                SourceItem(
                    id=_safe_id(f"asterisk-{voice_dir.name}-{'_'.join(rel.parts)}"),
                    path=f,
                    speaker=f"asterisk-{name}",  # the same voice name in two languages is taken as one speaker
                    language=lang,
                    transcript=None,
                    source=str(f.relative_to(root)),
                )
            )
    return items


def _game_language(folder: str) -> str:
    """A word game's language folder -> an espeak-ng-style name: "en_GB" -> "en-gb", "sr@latin" -> "sr"."""
    return folder.split("@")[0].replace("_", "-").lower()


def word_game_items(root: Path, game: str, languages: tuple[str, ...] | None, skipped: dict[str, int]) -> list[SourceItem]:
    """The recorded voices of a word game's tree ``root`` ("klettres" or "ktuberling", see the module docstring)."""
    items: list[SourceItem] = []
    seen: set[str] = set()
    for lang_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        lang = _game_language(lang_dir.name)
        if not _wanted(lang, languages):
            continue
        for f in sorted(f for f in lang_dir.glob(WORD_GAMES[game][1]) if f.suffix.lower() in GAME_SUFFIXES):
            digest = hashlib.sha1(f.read_bytes()).hexdigest()
            if digest in seen:
                skipped["the same file in another language folder"] = skipped.get("the same file in another language folder", 0) + 1
                continue
            seen.add(digest)
            rel = f.relative_to(lang_dir).with_suffix("")
            items.append(
                SourceItem(
                    id=_safe_id(f"{game}-{lang_dir.name}-{'_'.join(rel.parts)}"),
                    path=f,
                    speaker=_safe_id(f"{game}-{lang_dir.name.split('@')[0]}"),
                    language=lang,
                    transcript=None,
                    source=str(f.relative_to(root)),
                )
            )
    return items


def queen_table(path: Path) -> list[tuple[str, int, int]]:
    """The entries of a Flight of the Amazon Queen ``queen.1c`` archive -> [(name, offset, size)], offsets in the file.

    Layout (big-endian): ``QTBL``, a 6-byte version, 2 bytes, a compression byte, the entry count (uint16), then
    per entry a 12-byte NUL-padded name, a bundle byte, the offset and the size (uint32 each).
    """
    import struct

    with open(path, "rb") as f:
        head = f.read(15)
        if len(head) < 15 or head[:4] != b"QTBL":
            raise MetadataError(path, "not a Flight of the Amazon Queen archive (no QTBL table at its start)")
        (count,) = struct.unpack(">H", head[13:15])
        table = f.read(21 * count)
        size = f.seek(0, 2)
    if len(table) < 21 * count:
        raise MetadataError(path, f"truncated: its table should hold {count} entries")
    entries = []
    for i in range(count):
        raw = table[21 * i : 21 * (i + 1)]
        offset, n = struct.unpack(">II", raw[13:21])
        if offset + n > size:
            raise MetadataError(path, f"entry {i} runs past the end of the file")
        entries.append((raw[:12].split(b"\0")[0].decode("ascii", "replace"), offset, n))
    return entries


def _queen_root(src: Path) -> Path | None:
    for cand in (src / QUEEN, src):
        if (cand / QUEEN_ARCHIVE).is_file():
            return cand
    return None


def queen_items(root: Path, languages: tuple[str, ...] | None, skipped: dict[str, int]) -> list[SourceItem]:
    """The spoken lines of Flight of the Amazon Queen's archive in ``root`` whose speaker the name tells (see the
    module docstring), untranscribed; ``languages`` must admit "en" (the talkie release is English)."""
    if not _wanted("en", languages):
        return []
    archive = root / QUEEN_ARCHIVE
    items = []
    for name, offset, size in queen_table(archive):
        if not name.endswith(".SB"):
            continue
        m = _QUEEN_LINE.match(name)
        if m is None:
            skipped["cut-scene lines (several voices)"] = skipped.get("cut-scene lines (several voices)", 0) + 1
            continue
        speaker = "queen-joe" if m["who"] in (None, "J") else f"queen-room{m['room']}"
        items.append(SourceItem(_safe_id(f"queen-{name[:-3]}"), archive, speaker, "en", None, f"{QUEEN_ARCHIVE}:{name}", span=(offset, size)))
    return items


# ----------------------------------------------------------------------------- Beneath a Steel Sky's talkie

_SKY_ENTRY = 8  # bytes per sky.dnr entry: file number (uint16), offset and flags (packed, little-endian)
_SKY_HEADER = 22  # a data file's header: eleven uint16 fields, the total size (header included) at byte 12


def sky_table(path: Path) -> list[tuple[int, int, int, int]]:
    """The entries of Beneath a Steel Sky's ``sky.dnr`` index -> [(file number, offset in sky.dsk, size, flags)].

    Layout (little-endian): the entry count (uint32), then 8 bytes an entry: the file number (uint16), a 24-bit
    offset whose bit 23 says it counts 16-byte units, and 24 bits of size (the low 22) and flags (bit 23 set: stored
    as is; clear: RNC-packed after its header when that header says so; bit 22: the game drops the header once unpacked).
    """
    import struct

    raw = Path(path).read_bytes()
    if len(raw) < 4:
        raise MetadataError(path, "not a Beneath a Steel Sky index (shorter than its entry count)")
    (count,) = struct.unpack("<I", raw[:4])
    if count == 0:
        raise MetadataError(path, "not a Beneath a Steel Sky index (it lists no files)")
    if len(raw) < 4 + _SKY_ENTRY * count:
        raise MetadataError(path, f"not a Beneath a Steel Sky index (it should hold {count} entries of {_SKY_ENTRY} bytes)")
    table = np.frombuffer(raw, dtype=np.uint8, count=_SKY_ENTRY * count, offset=4).reshape(count, _SKY_ENTRY).astype(np.int64)
    number = table[:, 0] | table[:, 1] << 8
    offset = table[:, 2] | table[:, 3] << 8 | table[:, 4] << 16
    offset = np.where(offset & 0x800000, (offset & 0x7FFFFF) << 4, offset & 0x7FFFFF)
    flags = table[:, 5] | table[:, 6] << 8 | table[:, 7] << 16
    return [(int(n), int(o), int(f & 0x3FFFFF), int(f)) for n, o, f in zip(number, offset, flags)]


def _crc16(data: bytes) -> int:
    """CRC-16 with the reflected polynomial 0xA001 (as RNC archives store it)."""
    table = _CRC_TABLE
    crc = 0
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _crc_table() -> list[int]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        out.append(c)
    return out


_CRC_TABLE = _crc_table()


class _RncBits:
    """The bit reader of RNC method 1: bits least significant first out of 16-bit little-endian words, literal
    bytes read straight from the stream at the word that follows the bits in hand."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos  # the byte offset of the last word taken into ``reg``
        self.reg = self._word(pos)  # 16 + ``count`` bits not yet read, least significant first
        self.count = 0

    def _word(self, pos: int) -> int:
        if pos + 2 > len(self.data):
            raise ValueError("the packed data ends early")
        return self.data[pos] | self.data[pos + 1] << 8

    def read(self, n: int) -> int:
        if n > 16:
            raise ValueError(f"a code asks for {n} bits at once (at most 16)")
        value = self.reg & ((1 << n) - 1)
        if n <= self.count:
            self.reg >>= n
            self.count -= n
        else:
            rest = n - self.count
            self.pos += 2
            self.reg = ((self.reg >> self.count) & 0xFFFF) | self._word(self.pos) << 16
            self.reg >>= rest
            self.count = 16 - rest
        return value

    def literal(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) < n:
            raise ValueError("the packed data ends early")
        self.pos += n
        self.reg = self.reg & ((1 << self.count) - 1) | self._word(self.pos) << self.count
        return out

    def table(self) -> list[tuple[int, int, int]] | None:
        """A Huffman table as stored: [(code length, code as read least significant first, symbol)], shortest first;
        None where it holds no codes (the block then keeps the table before it)."""
        n = self.read(5)
        if n == 0:
            return None
        lengths = [self.read(4) for _ in range(n)]
        entries, code = [], 0
        for length in range(1, 17):
            for symbol, bits in enumerate(lengths):
                if bits == length:
                    msb_first = code >> (16 - length)
                    entries.append((length, int(f"{msb_first:0{length}b}"[::-1], 2), symbol))
                    code += 1 << (16 - length)
        return entries

    def value(self, table: list[tuple[int, int, int]]) -> int:
        for length, code, symbol in table:
            if self.reg & ((1 << length) - 1) == code:
                self.read(length)
                return symbol if symbol < 2 else self.read(symbol - 1) | 1 << (symbol - 1)
        raise ValueError("a code that its Huffman table does not hold")


def rnc_unpack(packed: bytes) -> bytes:
    """Unpack an RNC method 1 (Rob Northen Compression) block: ``RNC\\x01``, the unpacked and packed sizes (uint32,
    big-endian), their CRC-16s, the overlap and block-count bytes, then the bit stream -> the unpacked bytes.

    Raises ValueError for data that is not such a block, or whose sizes or checksums do not come out.
    """
    import struct

    if len(packed) < 18 or packed[:4] != b"RNC\x01":
        raise ValueError("not an RNC method 1 block")
    size, packed_size, crc_unpacked, crc_packed = struct.unpack(">IIHH", packed[4:16])
    blocks = packed[17]
    body = packed[18 : 18 + packed_size]
    if len(body) < packed_size:
        raise ValueError(f"the block is cut short ({len(body)} of {packed_size} packed bytes)")
    if _crc16(body) != crc_packed:
        raise ValueError("the packed bytes fail their checksum")
    bits = _RncBits(packed[: 18 + packed_size] + b"\0\0\0\0", 18)
    bits.read(2)  # two flag bits before the first block
    out = bytearray()
    raw: list[tuple[int, int, int]] = []
    dist: list[tuple[int, int, int]] = []
    length: list[tuple[int, int, int]] = []
    for _ in range(blocks):
        raw, dist, length = (bits.table() or before for before in (raw, dist, length))
        for left in range(bits.read(16), 0, -1):
            n = bits.value(raw)
            if len(out) + n > size:
                raise ValueError(f"unpacks to more than the {size} bytes its header gives")
            if n:
                out += bits.literal(n)
            if left > 1:
                back = bits.value(dist) + 1
                n = bits.value(length) + 2
                if back > len(out):
                    raise ValueError("a match reaches before the start of the data")
                if len(out) + n > size:
                    raise ValueError(f"unpacks to more than the {size} bytes its header gives")
                start = len(out) - back
                while n > 0:  # the source may overlap what is being written: copy what is there, doubling each time
                    step = min(n, len(out) - start)
                    out += out[start : start + step]
                    n -= step
    if len(out) != size or _crc16(bytes(out)) != crc_unpacked:
        raise ValueError(f"unpacks to {len(out)} bytes that fail the header's size ({size}) or checksum")
    return bytes(out)


def sky_file(disk: Path, entry: tuple[int, int, int, int]) -> bytes:
    """One data file of ``sky.dsk`` (``entry`` from :func:`sky_table`) -> its 22-byte header as stored, then its data,
    unpacked where it is stored RNC-packed."""
    import struct

    _, offset, size, flags = entry
    with open(disk, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) < size:
        raise MediaError(disk, f"file {entry[0]} of {size} bytes at byte {offset} runs past the end of the archive")
    if size < _SKY_HEADER:
        raise MediaError(disk, f"file {entry[0]} is shorter than its {_SKY_HEADER}-byte header ({size} bytes)")
    (head_flag,) = struct.unpack("<H", data[:2])
    if not flags & 0x800000 and head_flag & 0x80 and data[_SKY_HEADER : _SKY_HEADER + 4] == b"RNC\x01":
        try:
            body = rnc_unpack(data[_SKY_HEADER:])
        except ValueError as err:
            raise MediaError(disk, f"file {entry[0]} at byte {offset}: {err}") from None
        data = data[:_SKY_HEADER] + body  # the packed data never holds the header (bit 22 only says whether the game keeps it)
    return data


def _sky_speech(disk: Path, entry: tuple[int, int, int, int]) -> np.ndarray:
    """A spoken line of ``sky.dsk`` -> float32 [T] at 16 kHz: 8-bit unsigned PCM at 11,025 Hz after its header."""
    import struct

    from avse.audio.io import resample

    data = sky_file(disk, entry)
    flag, total = struct.unpack("<H", data[:2])[0], struct.unpack("<H", data[12:14])[0]
    total |= (flag & 0xFF00) << 8  # the size's high byte is kept in the flag word
    pcm = np.frombuffer(data[_SKY_HEADER : max(total, _SKY_HEADER)], dtype=np.uint8)
    x = (pcm.astype(np.float32) - 128.0) / 128.0
    return resample(x, SKY_RATE, SAMPLE_RATE).astype(np.float32)


def _sky_root(src: Path) -> Path | None:
    for cand in (src / SKY, src):
        if (cand / SKY_INDEX).is_file() and (cand / SKY_DISK).is_file():
            return cand
    return None


def sky_items(root: Path, languages: tuple[str, ...] | None) -> list[SourceItem]:
    """The spoken lines of Beneath a Steel Sky's ``sky.dsk`` in ``root``, untranscribed, all under one speaker label
    (the archive does not say who speaks: see the module docstring); ``languages`` must admit "en"."""
    if not _wanted("en", languages):
        return []
    disk = root / SKY_DISK
    items = []
    for entry in sky_table(root / SKY_INDEX):
        if entry[0] in SKY_SPEECH:
            line = entry[0] - SKY_SPEECH.start
            items.append(SourceItem(f"sky-{line:04d}", disk, "sky", "en", None, f"{SKY_DISK}:{entry[0]}", sky=entry))
    return sorted(items, key=lambda i: i.id)


def _load_span(path: Path, span: tuple[int, int]) -> np.ndarray:
    """Decode the recording stored at ``span`` = (offset, size) of ``path`` (a sound file's bytes) -> float32 [T] at 16 kHz, mono."""
    import io

    import soundfile as sf

    from avse.audio.io import resample

    with open(path, "rb") as f:
        f.seek(span[0])
        data = f.read(span[1])
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise MediaError(path, f"cannot decode the recording at byte {span[0]}: {err}") from None
    return resample(x.mean(axis=1), int(sr), SAMPLE_RATE).astype(np.float32)


def folder_items(src: Path, language: str) -> list[SourceItem]:
    """A user's recordings under ``src`` (wav/flac/ogg, recursively): speaker = parent folder, transcript = same-name .txt."""
    items = []
    seen: set[str] = set()
    for f in sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")):
        speaker = _safe_id(f.parent.name if f.parent != src else src.name)
        txt = f.with_suffix(".txt")
        transcript = None
        if txt.is_file():
            transcript = " ".join(txt.read_text(encoding="utf-8", errors="replace").split()) or None
        base = _safe_id(f"{speaker}-{f.stem}")
        uid, k = base, 1
        while uid in seen:
            k += 1
            uid = f"{base}-{k}"
        seen.add(uid)
        items.append(SourceItem(uid, f, speaker, language, transcript, str(f.relative_to(src))))
    return items


def discover(src: str | Path, languages: tuple[str, ...] | None = None) -> tuple[list[str], list[SourceItem], dict[str, int]]:
    """What ``src`` holds -> (kinds found, e.g. ["fillets-ng", "asterisk"], items, counts of files skipped already).

    fillets-ng, asterisk, KLettres, KTuberling, Flight of the Amazon Queen and Beneath a Steel Sky trees are recognised by their
    layout (as unpacked by scripts/fetch_real_speech, or their own folders);
    anything else is a folder of recordings in ``languages[0]`` (default "en-us").
    """
    src = Path(src)
    if not src.is_dir():
        raise ConfigError(f"{src}: no such folder")
    skipped: dict[str, int] = {}
    kinds, items = [], []
    fil = _fillets_root(src)
    if fil is not None:
        kinds.append("fillets-ng")
        items += fillets_items(fil, languages, skipped)
    ast = _asterisk_root(src)
    if ast is not None:
        kinds.append("asterisk")
        items += asterisk_items(ast, languages)
    for game in WORD_GAMES:
        root = _word_game_root(src, game)
        if root is not None:
            kinds.append(game)
            items += word_game_items(root, game, languages, skipped)
    queen = _queen_root(src)
    if queen is not None:
        kinds.append("queen")
        items += queen_items(queen, languages, skipped)
    sky = _sky_root(src)
    if sky is not None:
        kinds.append("sky")
        items += sky_items(sky, languages)
    if not kinds:
        kinds.append("folder")
        items = folder_items(src, languages[0] if languages else "en-us")
    if not items:
        raise ConfigError(f"{src}: no recordings found ({', '.join(kinds)}; audio files: {', '.join(AUDIO_SUFFIXES)})")
    return kinds, items, skipped


# ----------------------------------------------------------------------------- importing


def _record_path(out: Path, item_id: str) -> Path:
    return out / WORK_DIR / f"{item_id}.json"


def _recognise_mode(recognise: bool | str | None) -> str | None:
    """``recognise`` as given (False/None: no recognition, True: "english", or a mode name) -> a mode or None."""
    if recognise is None or recognise is False:
        return None
    if recognise is True:
        return "english"
    from avse.data.recognise import RECOGNISE_MODES

    if recognise not in RECOGNISE_MODES:
        raise ConfigError(f"recognise must be one of {', '.join(RECOGNISE_MODES)}, got {recognise!r}")
    return recognise


def _recognised(item: SourceItem, mode: str | None) -> bool:
    """Whether ``item`` gets recognised phones: untranscribed, in a language the recognition ``mode`` covers."""
    from avse.data.recognise import can_recognise

    return bool(mode and not item.transcript and can_recognise(item.language, mode))


def _options(item: SourceItem, do_align: bool, mode: str | None = None) -> dict[str, Any]:
    from avse.data.align import VERSION

    aligned = bool(do_align and item.transcript)
    opts = {"format": FORMAT, "language": item.language, "transcript": item.transcript, "align": VERSION if aligned else None}
    if _recognised(item, mode):  # the key only where it applies, so that other records stay valid
        from avse.data.recognise import VERSION as RECOGNISE_VERSION

        opts["recognise"] = RECOGNISE_VERSION
    return opts


def _rounded(spans: list[tuple[str, float, float]]) -> list[list[Any]]:
    return [[sym, round(float(s), 4), round(float(e), 4)] for sym, s, e in spans]


def import_one(out: Path, item: SourceItem, do_align: bool = True, recognise: bool | str | None = None) -> dict[str, Any]:
    """Import one recording into ``out``: its wav and its record; returns the record ({"skipped": reason} or an entry).

    ``recognise`` ("english", "all", or True for "english"): an untranscribed
    recording in a language it covers gets phones recognised by
    :func:`avse.data.recognise.recognise_phones` (``"phones_from":
    "recognised"``), so that it can be a target.
    """
    from avse.audio.io import load_audio, save_wav
    from avse.data.align import align, speech_span
    from avse.data.tts.errors import TtsError
    from avse.utils.fs import write_json

    mode = _recognise_mode(recognise)
    record: dict[str, Any] = {"options": _options(item, do_align, mode)}
    try:
        if item.sky is not None:
            audio = _sky_speech(item.path, item.sky)
        elif item.span is not None:
            audio = _load_span(item.path, item.span)
        else:
            audio = load_audio(item.path, SAMPLE_RATE)[0]
    except MediaError as err:
        record["skipped"] = "unreadable"
        record["why"] = str(err.problem)
    else:
        duration = len(audio) / SAMPLE_RATE
        if duration < MIN_SECONDS:
            record["skipped"] = f"shorter than {MIN_SECONDS} s"
        elif speech_span(audio) is None:
            record["skipped"] = "no speech (silent or steady noise)"
        else:
            peak = float(np.max(np.abs(audio)))
            if peak > PEAK_LIMIT:
                audio = (audio * (PEAK_LIMIT / peak)).astype(np.float32)
            wav = out / WAV_DIR / f"{item.id}.wav"
            save_wav(wav, audio)
            entry: dict[str, Any] = {
                "id": item.id,
                "wavfile": f"{WAV_DIR}/{item.id}.wav",
                "speaker": item.speaker,
                "language": item.language,
                "transcript": item.transcript,
                "duration": round(duration, 4),
                "nsamples": int(len(audio)),
                "source": item.source,
                **dict(item.extra),
                "phones": None,
                "words": None,
            }
            if item.transcript and do_align:
                try:
                    res = align(audio, item.transcript, item.language)
                except (AvseError, TtsError) as err:
                    entry["align_error"] = str(err)
                else:
                    entry["phones"] = _rounded(res.phones)
                    entry["words"] = _rounded(res.words)
                    entry["align_cost"] = round(res.cost, 3)
                    entry["align_rate"] = round(res.rate, 3)
            elif _recognised(item, mode):
                from avse.data.recognise import recognise_phones

                entry["phones"] = _rounded(recognise_phones(audio))
                entry["phones_from"] = "recognised"
            record["entry"] = entry
    write_json(_record_path(out, item.id), record)
    return record


def _done(out: Path, item: SourceItem, do_align: bool, mode: str | None = None) -> dict[str, Any] | None:
    rec_path = _record_path(out, item.id)
    if not rec_path.exists():
        return None
    try:
        rec = json.loads(rec_path.read_text())
    except json.JSONDecodeError:
        return None
    if rec.get("options") != _options(item, do_align, mode):
        return None
    if "entry" in rec and not (out / rec["entry"]["wavfile"]).exists():
        return None
    return rec


def _run_import(args: tuple[str, SourceItem, bool, str | None]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return import_one(Path(args[0]), args[1], args[2], args[3])


def _summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    by_lang: dict[str, dict[str, Any]] = {}
    speakers: dict[str, dict[str, Any]] = {}
    for e in entries:
        lang = by_lang.setdefault(e["language"], {"recordings": 0, "hours": 0.0, "speakers": set(), "transcribed": 0, "aligned": 0, "recognised": 0})
        recognised = e.get("phones_from") == "recognised"
        lang["recordings"] += 1
        lang["hours"] += e["duration"] / 3600.0
        lang["speakers"].add(e["speaker"])
        lang["transcribed"] += e["transcript"] is not None
        lang["aligned"] += e["phones"] is not None and not recognised
        lang["recognised"] += recognised
        spk = speakers.setdefault(e["speaker"], {"language": e["language"], "recordings": 0, "seconds": 0.0, "aligned": 0})
        spk["recordings"] += 1
        spk["seconds"] += e["duration"]
        spk["aligned"] += e["phones"] is not None  # with phones: a possible target
    for lang in by_lang.values():
        lang["hours"] = round(lang["hours"], 3)
        lang["speakers"] = len(lang["speakers"])
    for spk in speakers.values():
        spk["seconds"] = round(spk["seconds"], 1)
    return {"languages": dict(sorted(by_lang.items())), "speakers": dict(sorted(speakers.items()))}


def import_speech(
    src: str | Path,
    out: str | Path,
    languages: tuple[str, ...] | None = None,
    do_align: bool = True,
    jobs: int = 1,
    progress: bool = True,
    recognise: bool | str | None = None,
) -> dict[str, Any]:
    """Import the recordings of ``src`` into ``out`` (``OUT/wav/ID.wav`` + ``OUT/speech.json``, written last).

    ``languages``: espeak-ng voice names; for fillets-ng and asterisk the
    languages to import (None: every one found), for a folder of recordings
    their language (default "en-us"). With ``do_align`` every transcribed
    recording gets phone and word timings (:func:`avse.data.align.align`);
    with ``recognise`` ("english", or True; "all": every language, heard as
    English) every untranscribed one in those languages gets recognised phone
    timings (:mod:`avse.data.recognise`, PocketSphinx), so that it can be a
    target too. Resumes: a recording imported by an earlier run with the same options is
    kept. Unusable files are skipped and counted (one warning). Returns a
    summary: kinds, counts per language (recordings, hours, speakers,
    transcribed, aligned), per speaker, and the skipped counts by reason.
    """
    from avse.utils.fs import check_output_folder, ensure_dir
    from avse.utils.pool import remove_stale_parts, worker_pool

    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    mode = _recognise_mode(recognise)
    src, out = Path(src).resolve(), Path(out).resolve()
    if out == src or src in out.parents:
        from avse.errors import OutputPathError

        raise OutputPathError(f"{out}: the output folder must not be inside the source folder {src}")
    check_output_folder(out)
    kinds, items, skipped = discover(src, languages)
    n_found = len(items) + sum(skipped.values())
    ensure_dir(out)
    for folder in (out, out / WORK_DIR, out / WAV_DIR):
        if folder.is_dir():
            remove_stale_parts(folder)
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for item in items:
        rec = _done(out, item, do_align, mode)
        if rec is None:
            todo.append((str(out), item, do_align, mode))
        else:
            records[item.id] = rec
    bar = tqdm(total=len(todo), desc="import", unit="file", disable=not progress or not todo, leave=False)
    try:
        if jobs <= 1 or len(todo) <= 1:
            for args in todo:
                records[args[1].id] = import_one(Path(args[0]), args[1], args[2], args[3])
                bar.update()
        else:
            with worker_pool(min(jobs, len(todo))) as pool:
                for args, rec in zip(todo, pool.imap(_run_import, todo, chunksize=4)):
                    records[args[1].id] = rec
                    bar.update()
    finally:
        bar.close()
    entries = []
    for item in items:
        rec = records[item.id]
        if "entry" in rec:
            entries.append(rec["entry"])
        else:
            skipped[rec["skipped"]] = skipped.get(rec["skipped"], 0) + 1
    not_aligned = sum(1 for e in entries if e["transcript"] and do_align and e["phones"] is None)
    summary = {"source": str(src), "kinds": kinds, "imported": len(entries), "made_now": len(todo), **_summary(entries)}
    summary["skipped"] = dict(sorted(skipped.items()))
    summary["not_aligned"] = not_aligned
    _write_list(out / LIST_NAME, {"format": FORMAT, "source": str(src), "kinds": kinds, "aligned": do_align}, entries)
    n_skipped = sum(skipped.values())
    if n_skipped or not_aligned:
        parts = [f"{n} {why}" for why, n in sorted(skipped.items())]
        if not_aligned:
            parts.append(f"{not_aligned} transcribed but not aligned (kept without phones; see align_error in {LIST_NAME})")
        warnings.warn(f"import-speech: skipped {n_skipped} of {n_found} files: " + "; ".join(parts), stacklevel=2)
    return summary


def _write_list(path: Path, head: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """The list as JSON with one entry per line (phone timings make indented entries long), atomically."""
    from avse.utils.fs import atomic_path

    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "items": [\n'
    text += ",\n".join(json.dumps(e, ensure_ascii=False) for e in entries) + "\n]}\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def load_real_speech(folder: str | Path) -> list[dict[str, Any]]:
    """The entries of ``FOLDER/speech.json`` written by :func:`import_speech`; MetadataError when missing or malformed."""
    path = Path(folder) / LIST_NAME
    if not path.is_file():
        raise MetadataError(path, "no such file: import recordings first (avse import-speech SRC OUT)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MetadataError(path, f"not valid JSON ({err.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("items"), list):
        raise MetadataError(path, f"not an avse real-speech list (format {FORMAT})")
    need = ("id", "wavfile", "speaker", "language", "transcript", "duration", "nsamples", "phones")
    for k, e in enumerate(data["items"]):
        if not isinstance(e, dict) or any(key not in e for key in need):
            raise MetadataError(path, f"item {k} lacks one of {', '.join(need)}")
        safe_name(e["id"], path, f"item {k}: field 'id'")  # ids and speakers become corpus file names
        safe_name(e["speaker"], path, f"item {k}: field 'speaker'")
        if e["wavfile"] != f"{WAV_DIR}/{e['id']}.wav":
            raise MetadataError(path, f"item {k}: field 'wavfile' must be {WAV_DIR}/{e['id']}.wav, got {e['wavfile']!r}")
    return data["items"]
