"""The face record every face module passes around."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the upright RGB image it was found in."""

    box: tuple[float, float, float, float]          # x0, y0, x1, y1
    score: float                                     # detector confidence, 0..1
    # Five points, always in this order: right eye, left eye, nose tip, right mouth corner,
    # left mouth corner ("right" = the person's right = image left for a frontal face).
    landmarks: list[tuple[float, float]] = field(default_factory=list)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]
