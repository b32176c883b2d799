"""Container names: validation and Docker-style random names."""
from __future__ import annotations

import random
import re
from collections.abc import Callable

from engine.errors import InvalidParameter

VALID_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", re.ASCII)
MAX_NAME = 255

_LEFT = ["admiring", "brave", "busy", "clever", "dreamy", "eager", "elegant", "focused", "gallant",
         "happy", "jolly", "keen", "laughing", "loving", "modest", "nifty", "peaceful", "quirky",
         "relaxed", "serene", "sharp", "stoic", "tender", "vibrant", "wizardly", "zealous"]
_RIGHT = ["archimedes", "babbage", "curie", "darwin", "einstein", "fermi", "galileo", "hopper",
          "hypatia", "kepler", "lovelace", "meitner", "newton", "noether", "pascal", "ritchie",
          "shannon", "tesla", "thompson", "turing", "wozniak", "yonath"]


def validate(name: str) -> str:
    """Return the canonical '/name' form or raise Docker's 400 error."""
    if len(name) > MAX_NAME or not VALID_NAME.fullmatch(name):
        shown = name if len(name) <= 100 else name[:100] + "..."
        raise InvalidParameter(f"Invalid container name ({shown}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name if name.startswith("/") else "/" + name


def generate(taken: Callable[[str], bool]) -> str:
    """A free random name; `taken` says whether one is in use (asked per candidate, so that a create need
    not read every container's name)."""
    for attempt in range(100):
        name = f"/{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
        if attempt >= 10:
            name += str(random.randint(0, 99))
        if not taken(name):
            return name
    raise InvalidParameter("could not generate a unique container name")
