"""Offline stand-ins for the Oxford-IIIT Pet and tf_flowers releases, drawn procedurally in their exact layouts."""

from visionflow.data.synthetic.flowers import GENERATION_ORDER, generate_flowers
from visionflow.data.synthetic.pets import PET_BREEDS, RELEASE_BREEDS, breed_ids, generate_pets, species_of

__all__ = [
    "GENERATION_ORDER",
    "PET_BREEDS",
    "RELEASE_BREEDS",
    "breed_ids",
    "generate_flowers",
    "generate_pets",
    "species_of",
]
