"""What the synthetic audio-video corpus contains: frames, sounds, item text and plays.

Each item has a hidden genre ``g``, a combination of two factors per modality, so that
no single global statistic identifies it (``L = ceil(sqrt(n_genres))`` levels each):

- video: a *palette* (hue range, level ``g // L``) and a *shape* (discs, stripes,
  squares, rings or crosses, level ``g % L``) moving in a genre-specific direction;
- audio: a *pitch* band (level ``g // L``, the same split as the palette) and an
  *articulation* (legato, staccato, glides, tremolo or vibrato notes, level ``g % L``),
  played in a timbre drawn per item.

Colour and pitch statistics (mean colour, hue histogram, spectral centroid or the
average spectrum) thus reveal ``g // L`` at best; telling apart the genres that share
them needs shape or articulation, which a learned model sees in frames and
spectrograms. Every item draws its own positions, sizes, speeds, hue and pitch jitter,
background, timbre, pixel and audio noise.

Titles and tags (genre-correlated, with noise) and a play log drawn from users' genre
preferences and item popularity complete the corpus. Everything here is NumPy, driven
by the generator passed in; :mod:`avrec.data._av_corpus` writes it to disk.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avrec.data._interactions import Interactions
from avrec.data._synthetic import _ItemSampler
from avrec.data._vocabulary import Vocabulary

__all__ = [
    "MAX_GENRES",
    "GenreStyle",
    "audio_samples",
    "genre_names",
    "genre_style",
    "descriptions",
    "play_log",
    "titles_and_tags",
    "video_frames",
]

SHAPES = ("discs", "stripes", "squares", "rings", "crosses")
TIMBRES = ("sine", "odd", "saw", "bell", "formant")
ARTICULATIONS = ("legato", "staccato", "glide", "tremolo", "vibrato")
MAX_GENRES = len(SHAPES) ** 2  # every (palette, shape) pair distinct

_PREFERENCE = 0.85  # share of plays drawn from the user's genre mixture (the rest: popularity)
_TAG_NOISE = 0.3  # share of tags drawn from the whole tag vocabulary instead of the genre's
_T0 = 1_577_836_800  # 2020-01-01, Unix seconds
_SPAN = 365 * 86_400
_FRAME_CHUNK = 64  # frames synthesised at once (bounds memory for long clips)
_LOW_HZ, _OCTAVES = 110.0, 4.0  # pitch bands split 110 Hz .. 1760 Hz on a log scale
_BELL = (1.0, 2.76, 5.40, 8.93, 13.34)

_GENRE_NAMES = (  # noqa: SIM905
    "ambient aurora basalt cinder delta ember fjord glacier harbor indigo jetty kelp lagoon "
    "meadow nebula orchard prairie quartz reef savanna tundra umber valley willow zephyr"
).split()
_WORDS = (  # noqa: SIM905
    "calm bright dark warm cold fast slow loud soft deep airy dense sparse lively moody "
    "dreamy gritty glossy rough smooth vivid muted playful solemn tense mellow epic cosy "
    "stark lush retro modern minimal bold gentle hazy crisp wild tidy noisy quiet rich "
    "lean heavy light rapid steady drifting rolling shimmering pulsing glowing"
).split()
_NOUNS = (  # noqa: SIM905
    "river signal garden machine harbor echo orbit lantern canyon mirror engine island "
    "forest tide circuit window spiral meadow comet bridge"
).split()
# filler of the descriptions: words that are neither genre names nor genre adjectives
_FILLER_ADJECTIVES = (  # noqa: SIM905
    "short long new old simple curious strange familiar little great early late recorded "
    "filmed edited shared popular rare classic fresh"
).split()
_FILLER_NOUNS = (  # noqa: SIM905
    "clip piece story scene session take track sketch episode moment study journey "
    "portrait picture recording performance sequence version cut reel"
).split()


@dataclass(frozen=True)
class GenreStyle:
    """The factor levels of one genre (see the module docstring)."""

    genre: int
    levels: int
    palette: int
    shape: int
    direction: float  # radians
    pitch: int
    articulation: int


def genre_style(genre: int, n_genres: int) -> GenreStyle:
    """Factor levels of ``genre`` among ``n_genres`` (at most :data:`MAX_GENRES`)."""
    levels = max(1, math.ceil(math.sqrt(n_genres) - 1e-9))
    return GenreStyle(
        genre=genre,
        levels=levels,
        palette=genre // levels,
        shape=genre % levels,
        direction=2 * math.pi * genre / n_genres,
        pitch=genre // levels,
        articulation=genre % levels,
    )


# ---------------------------------------------------------------------------------- video
def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Distance inside (positive) or outside (negative) the edge of one shape, in pixels."""
    if shape == "discs":
        return r - np.hypot(dx, dy)
    if shape == "squares":  # same area as the disc
        return 0.886 * r - np.maximum(np.abs(dx), np.abs(dy))
    if shape == "rings":
        dist = np.hypot(dx, dy)
        return np.minimum(1.25 * r - dist, dist - 0.7 * r)
    # crosses: two bars, about the disc's area
    ax, ay = np.abs(dx), np.abs(dy)
    half_len, half_width = 1.2 * r, 0.35 * r
    return np.maximum(
        np.minimum(half_len - ax, half_width - ay), np.minimum(half_len - ay, half_width - ax)
    )


def video_frames(
    style: GenreStyle,
    n_frames: int,
    fps: float,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """Yield ``n_frames`` RGB frames of shape ``(H, W, 3)``, uint8, for one item.

    All random choices of the item are drawn first; frames are then synthesised
    in vectorised chunks of up to 64, so memory does not grow with the duration.
    """
    height, width = size
    side = min(height, width)
    levels = style.levels
    shape = SHAPES[style.shape]
    hue = (style.palette + 0.5) / levels + rng.normal(0.0, 0.06 / levels)
    angle = style.direction + rng.normal(0.0, 0.35)
    speed = rng.uniform(0.15, 0.45) * side  # pixels per second
    velocity = speed * np.array([math.cos(angle), math.sin(angle)])

    background = _hsv(rng.random(), rng.uniform(0.05, 0.3), rng.uniform(0.15, 0.45))
    gx, gy = rng.normal(size=2) * 20.0  # a soft linear gradient across the frame
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = background + ((gx * xx / width + gy * yy / height) - (gx + gy) / 2)[..., None]
    noise_sigma = rng.uniform(4.0, 10.0)

    if shape == "stripes":
        count = 1
        period = rng.uniform(0.25, 0.5) * side
        duty = rng.uniform(0.08, 0.25)  # covers about as much as the other shapes
        phase0 = rng.random()
    else:
        count = int(rng.integers(2, 6))
        radius = rng.uniform(0.07, 0.15, count) * side
        start = rng.random((count, 2)) * np.array([width, height])
        jitter = rng.uniform(0.8, 1.2, count)
        tilt = rng.uniform(0, np.pi / 2, count)
    colours = [
        _hsv(hue + rng.uniform(-0.08, 0.08) / levels, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1))
        for _ in range(count)
    ]
    flicker = rng.normal(0.0, 4.0, n_frames)

    for lo in range(0, n_frames, _FRAME_CHUNK):
        hi = min(n_frames, lo + _FRAME_CHUNK)
        t = (np.arange(lo, hi, dtype=np.float32) / fps)[:, None, None]
        frames = np.broadcast_to(base, (hi - lo, height, width, 3)).copy()
        for k in range(count):
            if shape == "stripes":
                # bars perpendicular to the motion, sliding along it
                along = (xx * velocity[0] + yy * velocity[1]) / speed - speed * t
                f = (along / period + phase0) % 1.0
                edge = np.where(f < duty, np.minimum(f, duty - f), -np.minimum(f - duty, 1 - f))
                signed = edge * period
            else:
                cx = (start[k, 0] + velocity[0] * jitter[k] * t) % width
                cy = (start[k, 1] + velocity[1] * jitter[k] * t) % height
                dx = (xx - cx + width / 2) % width - width / 2  # wrap around the edges
                dy = (yy - cy + height / 2) % height - height / 2
                if shape == "squares":  # each tilted by its own angle
                    c, s = math.cos(tilt[k]), math.sin(tilt[k])
                    dx, dy = c * dx + s * dy, -s * dx + c * dy
                signed = _signed_distance(shape, dx, dy, float(radius[k]))
            alpha = np.clip(signed + 0.5, 0.0, 1.0)[..., None]
            frames += alpha * (colours[k] - frames)
        frames += flicker[lo:hi, None, None, None]
        frames += noise_sigma * rng.standard_normal(frames.shape, dtype=np.float32)
        out = np.clip(frames, 0, 255).astype(np.uint8)
        yield from out


# ---------------------------------------------------------------------------------- audio
def _partials(timbre: str) -> tuple[np.ndarray, np.ndarray]:
    """Frequency ratios and amplitudes of a timbre's partials."""
    k = np.arange(1, 17, dtype=np.float64)
    if timbre == "sine":
        return np.array([1.0, 2.0]), np.array([1.0, 0.08])
    if timbre == "odd":
        odd = k[::2]
        return odd, 1.0 / odd
    if timbre == "saw":
        return k, 1.0 / k
    if timbre == "bell":
        return np.array(_BELL), np.array([1.0, 0.7, 0.5, 0.35, 0.25])
    return k, np.exp(-0.5 * ((k - 4.0) / 1.5) ** 2) + 0.15 / k  # a formant near the 4th


def _tone(timbre: str, freq: np.ndarray, phase: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sum of a timbre's partials at instantaneous ``phase`` (partials above 0.45 fs left out)."""
    ratios, amps = _partials(timbre)
    tone = np.zeros(phase.size)
    for ratio, amp in zip(ratios, amps, strict=True):
        audible = freq * ratio < 0.45 * sample_rate  # no aliasing
        tone += np.where(audible, amp * np.sin(ratio * phase), 0.0)
    return tone


def _articulation(
    name: str, n_notes: int, rng: np.random.Generator
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Notes per second, and per note: attack and decay times (s), modulation rate (Hz)."""
    ones = np.ones(n_notes)
    if name == "legato":  # slow, swelling, sustained
        return rng.uniform(1.2, 1.8), rng.uniform(0.08, 0.15, n_notes), 1.5 * ones, 0 * ones
    if name == "staccato":  # fast, short plucks
        return rng.uniform(4.0, 6.0), 0.003 * ones, rng.uniform(0.03, 0.06, n_notes), 0 * ones
    decay = rng.uniform(0.3, 0.6, n_notes)
    if name == "glide":  # modulation = upward sweep in octaves per second
        return rng.uniform(2.0, 3.0), 0.01 * ones, decay, rng.uniform(0.6, 1.2, n_notes)
    # tremolo (amplitude) or vibrato (pitch) at a few to a dozen Hz
    low, high = (10.0, 16.0) if name == "tremolo" else (5.0, 7.0)
    return rng.uniform(1.5, 2.5), 0.02 * ones, decay, rng.uniform(low, high, n_notes)


def audio_samples(
    style: GenreStyle, duration: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A mono clip of ``duration`` seconds for one item: float32 of shape ``(1, T)``.

    A melody of notes whose pitch band and articulation follow the genre, in a
    timbre drawn per item, jittered per note, over white noise at 15-30 dB SNR.
    """
    n = max(1, round(duration * sample_rate))
    band = _OCTAVES / style.levels
    centre = math.log2(_LOW_HZ) + (style.pitch + 0.5) * band + rng.normal(0.0, 0.15 * band)
    timbre = TIMBRES[rng.integers(len(TIMBRES))]
    name = ARTICULATIONS[style.articulation]
    n_notes = math.ceil(duration * 6.0 * 1.7) + 2  # enough for the fastest articulation
    rate, attack, decay, modulation = _articulation(name, n_notes, rng)
    gaps = rng.uniform(0.6, 1.4, n_notes - 1) / rate
    onsets = rng.uniform(0.0, 0.2) + np.r_[0.0, np.cumsum(gaps)]
    pitches = 2.0 ** (centre + rng.uniform(-0.4, 0.4, n_notes) * band)

    t = np.arange(n) / sample_rate
    note = np.searchsorted(onsets, t, side="right") - 1  # -1 before the first onset
    playing = note >= 0
    note = np.maximum(note, 0)
    since = t - onsets[note]
    envelope = (1 - np.exp(-since / attack[note])) * np.exp(-since / decay[note])
    freq = pitches[note]
    if name == "glide":
        freq = freq * 2.0 ** (modulation[note] * since)
    elif name == "tremolo":
        envelope *= 0.55 + 0.45 * np.sin(2 * np.pi * modulation[note] * since)
    elif name == "vibrato":
        freq = freq * 2.0 ** (1.5 / 12 * np.sin(2 * np.pi * modulation[note] * since))
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    signal = np.where(playing, _tone(timbre, freq, phase, sample_rate) * envelope, 0.0)
    signal /= max(float(np.sqrt(np.mean(signal**2))), 1e-6)
    snr_db = rng.uniform(15.0, 30.0)
    signal += rng.normal(0.0, 10 ** (-snr_db / 20), n)
    signal *= rng.uniform(0.3, 0.6) / max(float(np.abs(signal).max()), 1e-6)
    return signal.astype(np.float32)[None, :]


# ---------------------------------------------------------------------------------- text, plays
def genre_names(n_genres: int) -> list[str]:
    """Names of the first ``n_genres`` genres."""
    return list(_GENRE_NAMES[:n_genres])


def titles_and_tags(
    rng: np.random.Generator, genres: np.ndarray, genre_names: list[str]
) -> tuple[list[str], list[str]]:
    """Random titles, and three tags per item: the genre's pool, 30% from anywhere."""
    n = genres.size
    pools = [[name, _WORDS[2 * g], _WORDS[2 * g + 1]] for g, name in enumerate(genre_names)]
    vocabulary = [tag for pool in pools for tag in pool]
    own = rng.integers(3, size=(n, 3))
    anywhere = rng.integers(len(vocabulary), size=(n, 3))
    noisy = rng.random((n, 3)) < _TAG_NOISE
    adjective = rng.integers(len(_WORDS), size=n)
    noun = rng.integers(len(_NOUNS), size=n)
    number = rng.integers(1, 100, size=n)
    titles, tags = [], []
    for i in range(n):
        chosen = [
            vocabulary[anywhere[i, j]] if noisy[i, j] else pools[genres[i]][own[i, j]]
            for j in range(3)
        ]
        tags.append("|".join(dict.fromkeys(chosen)))
        titles.append(f"{_WORDS[adjective[i]].title()} {_NOUNS[noun[i]].title()} {number[i]}")
    return titles, tags


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def descriptions(
    rng: np.random.Generator,
    genres: np.ndarray,
    genre_names: list[str],
    text_noise: float,
) -> tuple[list[str], np.ndarray]:
    """One-sentence item descriptions naming a genre among random filler words.

    Each description names a genre and its two adjectives (the genre's tag
    pool) in a template filled with words that carry no genre; for a
    ``text_noise`` share of the items (exactly ``round(text_noise * n)``, none
    with a single genre) the named genre is another one, drawn uniformly.

    Returns
    -------
    descriptions : list of str
    named : ndarray of shape (n,), dtype int64
        The genre each description names (equal to ``genres`` except the noisy items).
    """
    n, n_genres = genres.size, len(genre_names)
    named = genres.astype(np.int64).copy()
    n_noisy = round(text_noise * n) if n_genres > 1 else 0
    noisy = rng.choice(n, size=n_noisy, replace=False)
    named[noisy] = (genres[noisy] + 1 + rng.integers(n_genres - 1, size=n_noisy)) % n_genres
    adjectives = rng.integers(len(_FILLER_ADJECTIVES), size=(n, 3))
    nouns = rng.integers(len(_FILLER_NOUNS), size=(n, 2))
    order = rng.random(n) < 0.5  # which genre adjective comes first
    out = []
    for i in range(n):
        g = int(named[i])
        first, second = _WORDS[2 * g], _WORDS[2 * g + 1]
        if order[i]:
            first, second = second, first
        f1, f2, f3 = (_FILLER_ADJECTIVES[k] for k in adjectives[i])
        n1, n2 = (_FILLER_NOUNS[k] for k in nouns[i])
        out.append(
            f"{_article(f1).title()} {f1} {n1} in the {genre_names[g]} style: {first} and "
            f"{f2}, with {_article(f3)} {f3} {n2} and {_article(second)} {second} mood."
        )
    return out, named


def play_log(
    rng: np.random.Generator,
    genres: np.ndarray,
    item_ids: np.ndarray,
    n_users: int,
    plays_per_user: float,
) -> Interactions:
    """Plays summed per (user, item), with the time of the last play.

    Each user has a Dirichlet(0.3) mixture over genres and a log-normal activity
    (mean ``plays_per_user``, at least one play). A play picks a genre from the
    mixture (85%) and an item of it by Zipf popularity, or (15%) an item by
    popularity alone; its time falls in the user's active window inside 2020.
    Vectorised: one ``searchsorted`` for all genres and one per sampler.
    """
    n_genres = int(genres.max()) + 1
    n_items = genres.size
    popularity = (rng.permutation(n_items) + 1.0) ** -1.0  # Zipf, ranks shuffled
    sampler = _ItemSampler(popularity, genres, n_genres)
    preferences = rng.dirichlet(np.full(n_genres, 0.3), size=n_users)
    activity = rng.lognormal(0.0, 0.5, n_users)
    wanted = activity * plays_per_user / activity.mean() + rng.random(n_users)
    counts = np.maximum(1, np.floor(wanted))
    user = np.repeat(np.arange(n_users), counts.astype(np.int64))
    n = user.size
    # each play's genre from its user's mixture: one searchsorted over all users' CDFs
    cdf = np.cumsum(preferences, axis=1)
    cdf /= cdf[:, -1:]
    offsets = np.arange(n_users)[:, None]
    flat = (cdf + offsets).ravel()
    genre = (
        np.searchsorted(flat, user + rng.random(n) * (1 - 1e-12), side="right") - user * n_genres
    )
    genre = np.minimum(genre, n_genres - 1)
    item = np.empty(n, dtype=np.int64)
    by_taste = rng.random(n) < _PREFERENCE
    u = rng.random(n)
    item[by_taste] = sampler.draw_cluster(genre[by_taste], u[by_taste])
    item[~by_taste] = sampler.draw_global(u[~by_taste])
    first = _T0 + rng.random(n_users) * 0.7 * _SPAN
    length = rng.random(n_users) * (_T0 + _SPAN - first)
    stamps = np.floor(first[user] + rng.random(n) * length[user])
    width = max(5, len(str(n_users - 1)))
    users = Vocabulary(np.array([f"u{i:0{width}d}" for i in range(n_users)]))
    return Interactions.from_indices(
        user, item, None, stamps, users=users, items=Vocabulary(item_ids)
    )
