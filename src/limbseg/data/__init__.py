"""limbseg.data"""
