"""CallBuddy PBX: every caller reaches a person or gets a text back."""
