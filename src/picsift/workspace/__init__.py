"""picsift.workspace"""
