"""The demo dataset's procedural scenes (:mod:`bench.data.demo_data`), shared by every class.

A :class:`Scene` is sampled from a seeded rng (sky/ground or wall, 1/f textures, anti-aliased circles,
squares and triangles, lighting gradient, exposure, and a caption that describes it) and rendered to a
linear-RGB float array; how the scene then becomes pixels is what tells the classes apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


_PALETTE: dict[str, tuple[float, float, float]] = {  # linear RGB
    "red": (0.55, 0.06, 0.05),
    "orange": (0.75, 0.28, 0.04),
    "yellow": (0.75, 0.62, 0.06),
    "green": (0.10, 0.38, 0.08),
    "blue": (0.05, 0.12, 0.55),
    "purple": (0.30, 0.07, 0.45),
    "white": (0.78, 0.78, 0.76),
    "grey": (0.25, 0.25, 0.25),
    "black": (0.025, 0.025, 0.03),
    "brown": (0.22, 0.10, 0.04),
}
_SKIES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {  # (top, horizon)
    "a blue sky": ((0.10, 0.25, 0.65), (0.45, 0.60, 0.80)),
    "a grey sky": ((0.35, 0.37, 0.40), (0.60, 0.62, 0.64)),
    "a sunset sky": ((0.25, 0.15, 0.35), (0.85, 0.40, 0.12)),
    "a pale sky": ((0.55, 0.62, 0.72), (0.80, 0.80, 0.78)),
}
_GROUNDS: dict[str, tuple[float, float, float]] = {
    "a green field": (0.10, 0.28, 0.05),
    "a sandy beach": (0.55, 0.45, 0.28),
    "a brown field": (0.22, 0.13, 0.06),
    "grey rocks": (0.22, 0.22, 0.21),
    "snow": (0.75, 0.77, 0.80),
}
_WALLS: dict[str, tuple[float, float, float]] = {
    "a white wall": (0.70, 0.68, 0.64),
    "a beige wall": (0.55, 0.45, 0.32),
    "a dark wall": (0.06, 0.06, 0.07),
    "a blue wall": (0.12, 0.20, 0.40),
    "a green wall": (0.15, 0.30, 0.15),
}
_SHAPE_WORDS = {"circle": ("circle", "circles"), "square": ("square", "squares"), "triangle": ("triangle", "triangles")}


# --- scene description ---------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    kind: str  # circle | square | triangle
    color_name: str
    color: tuple[float, float, float]
    center: tuple[float, float]  # (x, y) in image units [0, 1]
    size: float  # radius / half side, image units
    angle: float
    shading: tuple[float, float]  # linear brightness gradient (x, y) across the image
    texture: float  # contrast of the texture on the shape


@dataclass(frozen=True)
class Scene:
    background: str  # caption words
    horizon: bool
    horizon_height: float
    horizon_tilt: float
    top: tuple[float, float, float]
    middle: tuple[float, float, float]
    ground: tuple[float, float, float]
    beta: float  # power-spectrum exponent of the textures
    texture: float  # contrast of the ground/wall texture
    sky_texture: float
    light: tuple[float, float]  # illumination gradient
    exposure: float
    shapes: tuple[Shape, ...]
    texture_seed: int

    def caption(self) -> str:
        counts: dict[tuple[str, str], int] = {}
        for s in self.shapes:
            counts[(s.color_name, s.kind)] = counts.get((s.color_name, s.kind), 0) + 1
        parts = []
        for (color, kind), k in counts.items():
            one, many = _SHAPE_WORDS[kind]
            parts.append(f"a {color} {one}" if k == 1 else f"{_number(k)} {color} {many}")
        things = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        where = f"in front of {self.background}"
        return f"a photo of {things} {where}"


def _number(k: int) -> str:
    return ("zero", "one", "two", "three", "four", "five", "six")[k] if k < 7 else str(k)


def _jitter(rng: np.random.Generator, color: tuple[float, float, float], spread: float) -> tuple[float, float, float]:
    j = rng.uniform(1.0 - spread, 1.0 + spread, size=3)
    return tuple(float(v) for v in np.clip(np.asarray(color) * j, 0.0, 1.0))  # type: ignore[return-value]


def _choice(rng: np.random.Generator, names: list[str]) -> str:
    return names[int(rng.integers(len(names)))]


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a scene; the same distribution for every class."""
    horizon = bool(rng.random() < 0.65)
    if horizon:
        sky = _choice(rng, sorted(_SKIES))
        ground = _choice(rng, sorted(_GROUNDS))
        top, middle = (_jitter(rng, c, 0.15) for c in _SKIES[sky])
        ground_rgb = _jitter(rng, _GROUNDS[ground], 0.2)
        background = f"{ground} under {sky}"
    else:
        wall = _choice(rng, sorted(_WALLS))
        base = _WALLS[wall]
        top, middle = _jitter(rng, base, 0.15), _jitter(rng, base, 0.15)
        ground_rgb = middle
        background = wall
    horizon_height = float(rng.uniform(0.35, 0.7))
    horizon_tilt = float(rng.uniform(-0.15, 0.15))
    beta = float(rng.uniform(1.9, 2.6))
    texture = float(rng.uniform(0.08, 0.3))
    sky_texture = float(rng.uniform(0.02, 0.1))
    light = (float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.35, 0.35)))
    exposure = float(np.exp(rng.uniform(np.log(0.6), np.log(1.25))))
    shapes = []
    for _ in range(int(rng.integers(1, 6))):
        kind = _choice(rng, ["circle", "square", "triangle"])
        color_name = _choice(rng, sorted(_PALETTE))
        shapes.append(
            Shape(
                kind=kind,
                color_name=color_name,
                color=_jitter(rng, _PALETTE[color_name], 0.2),
                center=(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.15, 0.9))),
                size=float(np.exp(rng.uniform(np.log(0.04), np.log(0.22)))),
                angle=float(rng.uniform(0.0, np.pi)),
                shading=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8))),
                texture=float(rng.uniform(0.0, 0.25)),
            )
        )
    return Scene(
        background, horizon, horizon_height, horizon_tilt, top, middle, ground_rgb, beta, texture, sky_texture,
        light, exposure, tuple(shapes), int(rng.integers(2**32)),
    )


# --- rendering -------------------------------------------------------------------


def _fractal_field(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """Gaussian field with power spectrum ~ f**-beta (f in cycles/image), unit std for f < 32.

    The scale does not depend on ``n``: a field rendered at 64 px is statistically
    the 128 px field without its top octave.
    """
    f1 = np.fft.fftfreq(n) * n
    f = np.hypot(f1[:, None], f1[None, :])
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    band = (np.abs(f1[:, None]) < 32) & (np.abs(f1[None, :]) < 32)
    norm = np.sqrt(np.sum(amp[band] ** 2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * amp).real * n
    return field / norm


def _coverage(distance: np.ndarray, n: int) -> np.ndarray:
    """Anti-aliased coverage from a signed distance (image units, positive inside): 1 px ramp."""
    return np.clip(distance * n + 0.5, 0.0, 1.0)


def _shape_distance(shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cx, cy = shape.center
    dx, dy = x - cx, y - cy
    if shape.kind == "circle":
        return shape.size - np.hypot(dx, dy)
    c, s = np.cos(shape.angle), np.sin(shape.angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if shape.kind == "square":
        return np.minimum(shape.size - np.abs(u), shape.size - np.abs(v))
    # equilateral triangle: inside where all three edge half-planes are positive
    r = shape.size * 0.5  # inradius
    d = None
    for k in range(3):
        a = shape.angle + np.pi / 2 + k * 2 * np.pi / 3
        e = r - (np.cos(a) * dx + np.sin(a) * dy)
        d = e if d is None else np.minimum(d, e)
    return d  # type: ignore[return-value]


def render_scene(scene: Scene, n: int) -> np.ndarray:
    """Linear-light radiance (n, n, 3) float64 in [0, 1] of a scene at n x n pixels."""
    u = (np.arange(n) + 0.5) / n
    x, y = u[None, :], u[:, None]
    trng = np.random.default_rng(np.random.SeedSequence(scene.texture_seed))
    ground_field = _fractal_field(trng, n, scene.beta)
    sky_field = _fractal_field(trng, n, scene.beta + 0.5)

    t = np.clip(y / max(scene.horizon_height, 1e-3), 0.0, 1.0)[..., None]
    gradient = (1 - t) * np.asarray(scene.top) + t * np.asarray(scene.middle)
    if scene.horizon:
        sky = gradient * np.exp(scene.sky_texture * sky_field)[..., None]
        ground = np.asarray(scene.ground) * np.exp(scene.texture * ground_field)[..., None]
        line = scene.horizon_height + scene.horizon_tilt * (x - 0.5)
        alpha = _coverage((y - line) * np.cos(np.arctan(scene.horizon_tilt)), n)[..., None]
        img = sky * (1 - alpha) + ground * alpha
    else:  # a textured wall with a colour gradient
        img = gradient * np.exp(scene.texture * ground_field)[..., None]

    for shape in scene.shapes:
        alpha = _coverage(_shape_distance(shape, x, y), n)[..., None]
        shade = 1.0 + shape.shading[0] * (x - shape.center[0]) + shape.shading[1] * (y - shape.center[1])
        color = np.asarray(shape.color) * (np.clip(shade, 0.3, 2.0) * np.exp(shape.texture * ground_field))[..., None]
        img = img * (1 - alpha) + color * alpha

    light = 1.0 + scene.light[0] * (x - 0.5) + scene.light[1] * (y - 0.5)
    return np.clip(img * (light * scene.exposure)[..., None], 0.0, 1.0)
