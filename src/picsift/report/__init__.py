"""picsift.report"""
