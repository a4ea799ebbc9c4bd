"""quillrl.data"""
