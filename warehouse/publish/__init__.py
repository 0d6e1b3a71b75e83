"""Publish: hand the view tables to readers as snapshot files, switched atomically.

`snapshot` writes a publication (an earlier one plus what changed, or the marts copied whole);
`directory` keeps the publication directory: the pointer `current.json` readers follow, and pruning.
"""

from warehouse.publish.directory import Publication, current_publication, refresh_watermark, switch
from warehouse.publish.snapshot import publish

__all__ = ["Publication", "current_publication", "publish", "refresh_watermark", "switch"]
