// The admin UI's entry point (replaced by the pages).
document.getElementById('app').textContent = 'mcpbus';
