"""quillrl.train"""
