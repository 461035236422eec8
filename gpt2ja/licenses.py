"""Licences: what the Hub's licence ids mean, the licence of text from a Wikipedia dump, and what licence a model
made from licensed text and a licensed base model may carry (ShareAlike: the same or a later version).

A floor below data, training and publishing, which all ask it; standard library only.
"""

import logging
import re
from typing import NamedTuple, Optional

from .errors import UserError

logger = logging.getLogger(__name__)

# The license ids the Hub takes in a card's metadata, as its documentation listed them (huggingface/hub-docs,
# docs/hub/repositories-licenses.md at commit 008d54d, read on 2026-12-07); `other` stands for any license
# not on the list (the card then names it).
HUB_LICENSE_IDS = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m afl-3.0
artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0
cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0
cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0
epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl
mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2
gemma unknown other
""".split())


def check_hub_license_id(flag, license_id):
    """Refuse (ValueError, as an argument dataclass raises) what is not on the Hub's list of license ids."""
    if license_id is not None and license_id not in HUB_LICENSE_IDS:
        raise ValueError(f"{flag} {license_id!r} is not a Hub license id such as cc-by-sa-4.0, apache-2.0, mit or "
                         "other (the ids the Hub lists: https://huggingface.co/docs/hub/repositories-licenses); for a "
                         "license not on that list, pass other")


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


