"""Licences: what the Hub's licence ids mean, the licence of text from a Wikipedia dump, and what licence a model
made from licensed text and a licensed base model may carry (ShareAlike: the same or a later version).

A floor below data, training and publishing, which all ask it; standard library only.
"""

import logging
import re
from typing import NamedTuple, Optional

from .errors import UserError

logger = logging.getLogger(__name__)


class License(NamedTuple):
    hub_id: str  # the Hub's license id
    name: str
    version: Optional[str]  # a Creative Commons license's; None for any other
    url: Optional[str]  # its deed; None for a license other than Creative Commons


# Wikipedia's Terms of Use moved its text to CC BY-SA 4.0 on this day; text from before stays 3.0, whose
# adaptations may be licensed under 4.0.
CC_BY_SA_4_SINCE = "20230607"
CC_VERSIONS = ("1.0", "2.0", "2.5", "3.0", "4.0")


def hub_license(hub_id):
    """The License of a Hub license id: a Creative Commons one (cc-by-sa-4.0, cc-by-nc-4.0, ...) with its name,
    version and deed; any other (mit, apache-2.0, other, ...) by its id alone."""
    match = re.fullmatch(r"cc-(by(?:-nc)?(?:-nd|-sa)?)-(\d\.\d)", hub_id)
    if not match:
        return License(hub_id, hub_id, None, None)
    elements, version = match.groups()
    return License(hub_id, f"CC {elements.upper()} {version}", version,
                   f"https://creativecommons.org/licenses/{elements}/{version}/")


def wikipedia_license(dump_date):
    """The license of what is derived from a Wikipedia dump: CC BY-SA 4.0 for a dump of 2023-06-07 or later,
    3.0 before; 4.0, with a warning, for a dump of unknown date (it may hold text contributed under 4.0)."""
    if dump_date is None:
        logger.warning("The dump's date is unknown: the cards say CC BY-SA 4.0, the license of Wikipedia text "
                       "since 2023-06-07 (and a license text under 3.0 may be adapted under).")
    return hub_license(f"cc-by-sa-{'3.0' if dump_date is not None and dump_date < CC_BY_SA_4_SINCE else '4.0'}")


def later_versions(license):
    """The ids of the license and of its later versions, where it is ShareAlike (CC BY-SA, CC BY-NC-SA): what
    ShareAlike lets an adaptation be licensed under. None for any other license."""
    if license.version is None or not license.hub_id.endswith(f"-sa-{license.version}"):
        return None
    family = license.hub_id.removesuffix(license.version)
    return [family + version for version in CC_VERSIONS[CC_VERSIONS.index(license.version):]]


def choose_license(requested, data_license, base_model=None):
    """The license the model, its Space and its dataset are published under: `requested` (--license, a Hub
    license id), required where the text is the user's own (data_license None: we cannot know its terms);
    without it, the data's (a Wikipedia dump's), or the base model's (run_info.json's base_model) where that is
    the later version of the same ShareAlike license. Refused where the data or the base model is ShareAlike
    and the license is not theirs, of the same or a later version."""
    if requested is None and data_license is None:
        raise UserError("--license is required for a model trained on your own text: give the Hub license id its "
                        "terms allow (cc-by-sa-4.0, apache-2.0, mit, other, ...), which this code cannot know.")
    sources = [("the training data", data_license)]
    if base_model and base_model.get("license"):
        sources.append((f"the base model {base_model['name']}", hub_license(base_model["license"])))
    share_alike = [(what, license) for what, license in sources if license and later_versions(license)]
    chosen = hub_license(requested) if requested else next(
        (candidate for _, candidate in share_alike
         if all(candidate.hub_id in later_versions(license) for _, license in share_alike)), data_license)
    for what, license in share_alike:
        if chosen.hub_id not in later_versions(license):
            flag = f"--license {requested}" if requested else f"The dump's license, {chosen.hub_id},"
            raise UserError(f"{flag} is refused: {what} is under {license.name}, whose ShareAlike terms ask "
                            f"that what is made from it be under {' or '.join(later_versions(license))}.")
    return chosen


