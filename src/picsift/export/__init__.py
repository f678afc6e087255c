"""Tables out of a workspace: one row per media with every feature, joinable with metadata."""

from picsift.export.table import errors_table, export_table, media_table, workspace_info

__all__ = ["errors_table", "export_table", "media_table", "workspace_info"]
