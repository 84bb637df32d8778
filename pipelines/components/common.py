"""Component decorator settings shared by every component."""

from __future__ import annotations

from functools import partial

from kfp import dsl

from pipelines.settings import image

#: Runs on the project image on a cluster and in the current environment locally: no runtime pip.
component = partial(dsl.component, base_image=image(), packages_to_install=[], install_kfp_package=False)
