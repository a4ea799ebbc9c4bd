"""quillrl.rewards"""
