"""A local module imported by textutil: must travel in the code package."""


def affine(value: float, factor: float, offset: float) -> float:
    return value * factor + offset
