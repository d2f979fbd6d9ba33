"""Where results come from: a points file, a result store (a URI or a folder), or a sweep NAME on the cluster.

`resolve` reads what a user typed once, in one place, for analyze, compare, suggest and transfer: which of the
three it is, where its store is, and the sweep it was trained from. The cluster is asked only for a NAME.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, Literal

from ff_core.errors import FlopsFitError
from ff_core.layout import SWEEP_FILE
from ff_core.spec import ScalingSweep, is_sweep_name_syntax, manifest_of, parse_sweep
from ff_core.store import Store, open_store, within

POINTS_FILES = (".csv", ".json")


@dataclasses.dataclass(frozen=True)
class Source:
    """A resolved SOURCE. `uri` is the store's (for a NAME: the folder the sweep's spec.storage names);
    `manifest` is a cluster sweep's resource."""

    given: str
    kind: Literal["points", "store", "cluster"]
    uri: str | None = None
    endpoint_url: str | None = None  # the user's --endpoint-url
    spec_endpoint: str | None = None  # a cluster sweep's spec.storage.endpointURL
    manifest: dict[str, Any] | None = None

    def store(self) -> Store:
        if self.uri is None:
            raise FlopsFitError(f"{self.given} is a points file, not a result store")
        return open_store(self.uri, self.endpoint_url, self.spec_endpoint)

    def observations(self, recipe: str | None = None, all_recipes: bool = False):
        """Every point to fit, with what was left out and why (ff_client.fit.points.Observations)."""
        if self.kind == "points":
            from ff_client.fit.datafile import load_points

            return load_points(self.given)
        from ff_client.fit.points import load_observations

        return load_observations(self.store(), recipe, all_recipes)

    def sweep(self) -> ScalingSweep | None:
        """The sweep the results were trained from: a NAME's resource, or the sweep.json the latest `ffctl run`
        wrote beside a store's results (None where there is none, or it cannot be read: points, old stores)."""
        if self.kind == "cluster":
            return parse_sweep(manifest_of(self.manifest), f"sweep {self.given}")
        if self.kind == "points":
            return None
        try:
            return parse_sweep(self.store().get_json(SWEEP_FILE), f"{self.given}/{SWEEP_FILE}")
        except FlopsFitError:  # StoreError (missing, unreachable) or SpecError (unreadable)
            return None

    @property
    def root(self) -> str:
        """The store URI the results folder lives in (what `ffctl run --store` takes)."""
        uri = self.store().uri.rstrip("/")
        return uri[: uri.rfind("/")] if "/" in uri.split("://", 1)[-1] else uri

    def beside(self, folder: str) -> Store:
        """The store of another sweep's folder under the same root (a transfer pilot's, a grown sweep's)."""
        return open_store(within(self.root, folder), self.endpoint_url, self.spec_endpoint)


def resolve(given: str, endpoint_url: str | None = None, namespace: str | None = None, context: str | None = None,
            points_file: bool = False, say: Callable[[str], None] = lambda message: None) -> Source:
    """What SOURCE names: a points file (`points_file`, or a name ending .csv/.json), a result store (a URI, or
    a folder that exists), or a sweep NAME on the cluster (a word that can be one). Anything else is an error
    that says which of them it could have been."""
    if points_file or (given.endswith(POINTS_FILES) and "://" not in given):
        if not os.path.isfile(given):
            raise FlopsFitError(f"{given}: no such points file")
        return Source(given, "points")
    if os.path.isfile(given):
        raise FlopsFitError(f"{given} is a file, not a result store (a folder); a points file is read with --data "
                            f"and ends in {' or '.join(POINTS_FILES)}")
    no_folder = f"{given}: no such folder (a result store is a folder, file://DIR or s3://bucket/prefix)"
    if given.startswith("file://") and not os.path.isdir(given[len("file://"):]):
        raise FlopsFitError(no_folder)
    if "://" in given or os.path.exists(given):
        return Source(given, "store", given, endpoint_url)
    if "/" in given or given.startswith(".") or not is_sweep_name_syntax(given):
        raise FlopsFitError(no_folder)
    from ff_client.cluster.connection import ClusterError, connect, get_sweep, results_uri

    try:
        connection = connect(context, namespace)
    except ClusterError as error:  # most likely a mistyped folder: say both readings
        raise FlopsFitError(f"{given}: no such folder here, nor a cluster to look for a sweep of that name on "
                            f"({error})") from None
    manifest = get_sweep(connection, given)
    uri = results_uri(manifest, given)
    if uri is None:
        raise ClusterError(f"sweep {given} names no spec.storage.uri")
    say(f"analysing {uri}")
    spec_endpoint = ((manifest.get("spec") or {}).get("storage") or {}).get("endpointURL")
    return Source(given, "cluster", uri, endpoint_url, spec_endpoint, manifest)
