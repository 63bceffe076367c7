"""limbseg.models"""
