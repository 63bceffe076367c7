"""limbseg.gui"""
