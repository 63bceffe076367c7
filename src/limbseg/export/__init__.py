"""limbseg.export"""
